// Typed errors. Every error sparq throws is a SparqError with a stable `code`; native errors arrive with
// the same codes (native/core/error.h) and are rebuilt here with the caller's stack.

export type SparqErrorCode =
  | 'SPARQ_INVALID_ARGUMENT'
  | 'SPARQ_SHAPE_MISMATCH'
  | 'SPARQ_DTYPE_MISMATCH'
  | 'SPARQ_DEVICE_MISMATCH'
  | 'SPARQ_NOT_POSITIVE_DEFINITE'
  | 'SPARQ_ALLOCATION_FAILED'
  | 'SPARQ_BACKEND_UNAVAILABLE'
  | 'SPARQ_INTERNAL'
  | 'SPARQ_INVALID_FILE'
  | 'SPARQ_UNSUPPORTED_FORMAT'
  | 'SPARQ_NON_FINITE'
  | 'SPARQ_WRITE_FAILED'
  | 'ABORT_ERR';

export class SparqError extends Error {
  readonly code: SparqErrorCode;
  constructor(code: SparqErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_INVALID_ARGUMENT', message, options);
  }
}
/**
 * A command line that does not parse: an unknown option, a value missing, a required option absent. The
 * CLI exits 2 for it (1 for every other error), as shells and argument parsers conventionally do.
 */
export class UsageError extends InvalidArgumentError {}
export class ShapeMismatchError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_SHAPE_MISMATCH', message, options);
  }
}
export class DTypeMismatchError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_DTYPE_MISMATCH', message, options);
  }
}
export class DeviceMismatchError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_DEVICE_MISMATCH', message, options);
  }
}
export class NotPositiveDefiniteError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_NOT_POSITIVE_DEFINITE', message, options);
  }
}
export class AllocationError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_ALLOCATION_FAILED', message, options);
  }
}
export class BackendUnavailableError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_BACKEND_UNAVAILABLE', message, options);
  }
}
export class InternalError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_INTERNAL', message, options);
  }
}
/** A file that is malformed or lies about its contents; the message names the file (and tensor). */
export class InvalidFileError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_INVALID_FILE', message, options);
  }
}
/** A format sparq refuses to read (e.g. pickled PyTorch checkpoints); the message says what to do. */
export class UnsupportedFormatError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_UNSUPPORTED_FORMAT', message, options);
  }
}
/** NaN or infinite values where finite ones are needed: a weight (named), or a block's activations. */
export class NonFiniteError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_NON_FINITE', message, options);
  }
}
/** Writing an output failed (disk full, permissions, …); the message names the file and what was kept. */
export class WriteFailedError extends SparqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPARQ_WRITE_FAILED', message, options);
  }
}
/** Thrown (or rejected with) when an AbortSignal stops an operation; `name` is 'AbortError' as in the DOM. */
export class AbortError extends SparqError {
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super('ABORT_ERR', message, options);
    this.name = 'AbortError';
  }
}

const BY_CODE: Record<SparqErrorCode, new (message: string, options?: { cause?: unknown }) => SparqError> = {
  SPARQ_INVALID_ARGUMENT: InvalidArgumentError,
  SPARQ_SHAPE_MISMATCH: ShapeMismatchError,
  SPARQ_DTYPE_MISMATCH: DTypeMismatchError,
  SPARQ_DEVICE_MISMATCH: DeviceMismatchError,
  SPARQ_NOT_POSITIVE_DEFINITE: NotPositiveDefiniteError,
  SPARQ_ALLOCATION_FAILED: AllocationError,
  SPARQ_BACKEND_UNAVAILABLE: BackendUnavailableError,
  SPARQ_INTERNAL: InternalError,
  SPARQ_INVALID_FILE: InvalidFileError,
  SPARQ_UNSUPPORTED_FORMAT: UnsupportedFormatError,
  SPARQ_NON_FINITE: NonFiniteError,
  SPARQ_WRITE_FAILED: WriteFailedError,
  ABORT_ERR: AbortError,
};

/**
 * Rebuilds an error thrown by the native addon as the matching SparqError. `callSite`, captured before an
 * asynchronous call, supplies the caller's stack, which the native rejection does not have.
 */
export function fromNativeError(error: unknown, callSite?: Error): unknown {
  if (error instanceof SparqError) return error;
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: string }).code;
  if (code === undefined || !Object.prototype.hasOwnProperty.call(BY_CODE, code)) return error;
  const typed = new BY_CODE[code as SparqErrorCode](error.message);
  if (callSite?.stack) {
    typed.stack = `${typed.name}: ${typed.message}\n${callSite.stack.split('\n').slice(1).join('\n')}`;
  }
  return typed;
}

/** A file-system error's cause in words. */
function describeFsError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOSPC':
      return 'the disk is full';
    case 'EDQUOT':
      return 'the disk quota is exhausted';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'EFBIG':
      return 'the file is larger than this file system (or ulimit -f) allows';
    default:
      return error.message;
  }
}

/**
 * The error to throw when writing `file` failed: a file-system error becomes a WriteFailedError naming the
 * file, followed by `kept` (what was left where) when given; other errors pass through, and a
 * WriteFailedError gains `kept` if it has none yet.
 */
export function writeFailure(file: string, error: unknown, kept?: string): unknown {
  const suffix = kept ? `; ${kept}` : '';
  if (error instanceof WriteFailedError) return kept && !error.message.includes(kept) ? new WriteFailedError(`${error.message}${suffix}`, { cause: error.cause }) : error;
  if (error instanceof SparqError || typeof (error as NodeJS.ErrnoException | undefined)?.code !== 'string') return error;
  return new WriteFailedError(`cannot write ${file}: ${describeFsError(error as NodeJS.ErrnoException)}${suffix}`, { cause: error });
}
