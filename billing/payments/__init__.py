"""billing.payments — collecting the hub's money: the payment provider adapter (Stripe first, through the official
SDK), collection with the invoice's id as idempotency key, webhooks, refunds and bank transfers."""
