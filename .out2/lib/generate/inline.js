// When a native op runs on the JavaScript thread instead of a worker. Handing an op to a worker and
// back costs about 0.1–0.2 ms on the 2-core VM (measured: 235 µs for axpyAsync on 64 floats against 9 µs
// inline), more than a decode step's small ops take. Work below these sizes runs inline — well under a
// millisecond, so the event loop never waits long — and everything larger stays on the async ops.
/** Elementwise and row-wise ops (norms, rotary, SiLU·mul, residual adds) on at most this many floats. */
export const INLINE_ELEMENTS = 1 << 16;
/** Matrix products and attention of at most this many multiply-adds (about 0.1–0.5 ms on one core). */
export const INLINE_MULTIPLY_ADDS = 1 << 20;
//# sourceMappingURL=inline.js.map