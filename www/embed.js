// embed.html's own script (external, so a strict Content-Security-Policy allows it): the model from
// ?model=NAME and ?device=auto|webgpu|cpu, and the elements' events logged on the page.
const params = new URLSearchParams(location.search);
const name = params.get("model");
const device = params.get("device");
for (const el of document.querySelectorAll("gpt2-generate")) {
  if (name) el.setAttribute("model", `models/${name}/`);
  if (device) el.setAttribute("device", device);
  el.addEventListener("done", (e) => {
    document.getElementById("log").textContent += `#${el.id} done: ${e.detail.tokens} tokens. `;
    el.dataset.done = String(e.detail.tokens);
  });
  el.addEventListener("error", (e) => (el.dataset.error = e.detail.message));
}
