export { Dartmouth, TERMINAL_STATUSES } from "./client.js";
export type {
  CatalogOptions,
  DartmouthOptions,
  FetchLike,
  FileContent,
  RequestOptions,
  RetryOptions,
  UploadFile,
  UploadOptions,
  WaitOptions,
} from "./client.js";
export { DartmouthError, parseRetryAfter } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export type * from "./types.js";
export type { components, paths } from "./schema.js";
