/** The server's stable error codes (README, "Errors"); any other string may come from a newer server. */
export type ErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "rate_limited"
  | "unavailable"
  | "internal"
  | (string & {});

/** The code the server's table gives each status, for an error answer that is not its JSON. */
const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  409: "conflict",
  413: "payload_too_large",
  429: "rate_limited",
  500: "internal",
  503: "unavailable",
};

/**
 * An error answer of the server: its `code` and `message` exactly as it sent them
 * (`{"error": {"code", "message"}}`), the HTTP `status`, and for 429 / 503 the `Retry-After`
 * in seconds. An error answer that is not that JSON (a proxy's page, say) gets the code the
 * server's table gives its status (`http_<status>` for a status outside it) and its text as
 * the message. A few errors are the client's own, with `status` 0: `timeout` (`tasks.wait`)
 * and `invalid_response` (a success answer that is not JSON).
 */
export class DartmouthError extends Error {
  override readonly name = "DartmouthError";
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds, from the `Retry-After` header. */
  readonly retryAfter: number | undefined;
  /** The `x-request-id` the server logged the request under. */
  readonly requestId: string | undefined;

  constructor(
    code: ErrorCode,
    status: number,
    message: string,
    options: { retryAfter?: number | undefined; requestId?: string | undefined } = {},
  ) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfter = options.retryAfter;
    this.requestId = options.requestId;
  }

  /** The DartmouthError an error answer stands for (its body already read as text). */
  static fromAnswer(status: number, body: string, headers: Headers): DartmouthError {
    const options = {
      retryAfter: parseRetryAfter(headers.get("retry-after")),
      requestId: headers.get("x-request-id") ?? undefined,
    };
    try {
      const parsed: unknown = JSON.parse(body);
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      if (error && typeof error.code === "string" && typeof error.message === "string") {
        return new DartmouthError(error.code, status, error.message, options);
      }
    } catch {
      // Not JSON: named by its status below.
    }
    const code = CODE_OF_STATUS[status] ?? `http_${status}`;
    const text = body.trim();
    const message = text === "" ? `HTTP ${status}` : text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
    return new DartmouthError(code, status, message, options);
  }
}

/** `Retry-After` as seconds: a number of seconds, or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, (at - Date.now()) / 1000);
}
