"""OCPI pushes to the partners' Receiver interfaces, always through the durable outbox (channel ``ocpi``).

One module per concept:

* :mod:`~ocpi.push.recipients` — who receives a push: the registered partners that may see a CPO, the role
  that receives, the eMSP that issued a token;
* :mod:`~ocpi.push.push_state` — what each partner was last sent of an object (``ocpi_push_state``);
* :mod:`~ocpi.push.outbox_message` — one push as an ``ocpi`` outbox row (method, path, body, routing headers,
  an ordering key per object and partner so the messages of one object arrive in order);
* :mod:`~ocpi.push.location_push`, :mod:`~ocpi.push.session_push`, :mod:`~ocpi.push.cdr_push`,
  :mod:`~ocpi.push.tariff_push` — the ``enqueue_*`` functions, called inside the business transaction (they
  only add outbox rows to ``db_session``; each returns the number of messages queued);
* :mod:`~ocpi.push.scanner` — :func:`~ocpi.push.scanner.scan`, the periodic safety net that queues whatever
  changed without a push (other packages may rely on it alone);
* :mod:`~ocpi.push.sender` — :class:`~ocpi.push.sender.OcpiSender`, the outbox channel sender (HTTP), in the
  partner's OCPI version (2.1.1 translated at delivery, :mod:`ocpi.v211.outgoing`);
* :mod:`~ocpi.push.classify` — what a partner's answer means: delivered, retried with backoff, or parked with
  its reason;
* :mod:`~ocpi.push.resync` — a partner that works again is brought up to date with the current state of what
  was parked (tariffs, locations, sessions, then CDRs), never a stale state after a newer one;
* :mod:`~ocpi.push.hooks` — the hooks :class:`~ocpi.component.OcpiComponent` appends to ``hub.hooks``.
"""
