// Keyboard shortcuts and page lifetimes: a page registers its keys and what to undo when the
// user leaves it; the router clears both on every navigation.

export const keys = { page: {} };
const cleanups = [];

export function onLeave(cleanup) {
  cleanups.push(cleanup);
}

export function leavePage() {
  while (cleanups.length) cleanups.pop()();
  keys.page = {};
}

/** Shortcuts that work everywhere; a page's own keys come first. */
export const HELP = [
  ["/", "search (the filter form, or find in a trace)"],
  ["j / k", "next / previous row"],
  ["Enter", "open the row, or fold the selected span"],
  ["Esc", "close the help, let go of the selected span"],
  ["?", "this help"],
];
