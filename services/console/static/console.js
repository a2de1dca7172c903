// The command center's chart, drawn from the JSON the server renders (and sends again by SSE).
// Everything else is htmx; nothing here builds HTML from data.
(function () {
  let chart = null;
  const colours = ["#0b5cad", "#c2410c", "#0f6b2f", "#6b21a8", "#a4161a", "#4a5360"];

  function draw() {
    const data = document.getElementById("orders-chart-data");
    const canvas = document.getElementById("orders-chart");
    if (!data || !canvas || typeof Chart === "undefined") return;
    const found = JSON.parse(data.textContent);
    const datasets = found.series.map((series, i) => ({
      label: series.channel,
      data: series.orders,
      backgroundColor: colours[i % colours.length],
      stack: "orders",
    }));
    if (chart) chart.destroy();
    chart = new Chart(canvas, {
      type: "bar",
      data: { labels: found.labels, datasets: datasets },
      options: {
        animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "summary") draw();
  });
})();
