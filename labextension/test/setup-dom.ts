// jsdom lacks DragEvent, which @lumino/dragdrop (imported by @lumino/widgets) subclasses.
if (typeof window !== 'undefined' && typeof (globalThis as any).DragEvent === 'undefined') {
  (globalThis as any).DragEvent = class DragEvent extends MouseEvent {};
}
