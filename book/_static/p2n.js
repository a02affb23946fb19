// A first visit has no stored colour mode; give the theme a valid one so it logs no error.
if (!document.documentElement.dataset.mode) {
  document.documentElement.dataset.mode = "light";
  document.documentElement.dataset.theme = "light";
}
