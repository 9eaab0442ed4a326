// Draws the dashboard's daily cost/kWh chart with Chart.js from the JSON embedded in the page.
// Without JavaScript the same numbers are in the table below the chart.
(function () {
  "use strict";
  var el = document.getElementById("chart-data");
  var canvas = document.getElementById("daily-chart");
  if (!el || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(el.textContent);
  var chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels.map(function (d) { return d.slice(8); }),
      datasets: [
        { type: "bar", label: "Cost (" + data.currency + ")", data: data.cost.map(Number),
          backgroundColor: "rgba(11, 110, 79, 0.7)", yAxisID: "cost" },
        { type: "line", label: "Energy (kWh)", data: data.kwh.map(Number),
          borderColor: "#e08a00", backgroundColor: "#e08a00", tension: 0.2, yAxisID: "kwh" }
      ]
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        cost: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: data.currency } },
        kwh: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
               title: { display: true, text: "kWh" } }
      }
    }
  });
  canvas.dataset.rendered = "true";
  window.evhubDailyChart = chart;
})();
