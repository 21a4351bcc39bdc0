// plotly.js, served by solarfleet from plotly's Python package; loaded on the first chart only.

let loading = null;

export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  loading ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/console/vendor/plotly.min.js";
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => {
      loading = null;
      reject(new Error("The charting library (plotly.js) could not be loaded"));
    };
    document.head.append(script);
  });
  return loading;
}

export const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

export const ms = (iso) => Date.parse(iso.endsWith("Z") ? iso : `${iso}Z`);
export const iso = (millis) => new Date(millis).toISOString().replace("Z", "");

// The data coordinate (ms since the epoch) of a click on a date x axis, or null outside it.
export function clickedTime(gd, event) {
  const xa = gd._fullLayout && gd._fullLayout.xaxis;
  if (!xa) return null;
  const px = event.clientX - gd.getBoundingClientRect().left - xa._offset;
  if (px < 0 || px > xa._length) return null;
  return xa.p2l(px);
}
