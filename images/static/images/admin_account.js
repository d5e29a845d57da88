// The account form shows the chosen driver's parameters: on the add page,
// choosing another driver reloads the form with that driver's fields.
document.addEventListener("DOMContentLoaded", () => {
  const select = document.querySelector("select[data-driver-switch]");
  if (!select || !window.location.pathname.endsWith("/add/")) return;
  select.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("driver", select.value);
    window.location.assign(url.toString());
  });
});
