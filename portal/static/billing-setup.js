// The payment-method page: the provider's hosted card element (Stripe.js, or localstripe's stand-in), the
// SetupIntent confirmed in the browser, and its id posted back to the portal with the page's CSRF token.
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") {
    return;
  }
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var status = document.getElementById("payment-status");
  var confirmed = false;
  form.addEventListener("submit", function (event) {
    if (confirmed) {
      return;
    }
    event.preventDefault();
    status.textContent = "Confirming with the payment provider…";
    stripe.confirmCardSetup(form.dataset.clientSecret, { payment_method: { card: card } }).then(function (result) {
      if (result.error) {
        status.textContent = (result.error && result.error.message) || "The card was refused.";
        return;
      }
      form.elements.setup_intent_id.value = result.setupIntent.id;
      confirmed = true;
      form.submit();
    });
  });
})();
