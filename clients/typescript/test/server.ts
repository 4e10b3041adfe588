// A real `dartmouth serve` for the suite: the binary from DARTMOUTH_BIN (default
// <repo>/target/release/dartmouth), a fresh temporary data directory, free loopback ports
// (port 0: the server reports the ones it bound), the bootstrap admin's key made with the CLI.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
export const BIN = process.env.DARTMOUTH_BIN ?? join(REPO, "target/release/dartmouth");

export interface Server {
  url: string;
  adminKey: string;
  dataDir: string;
  /** What the server printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function startServer(args: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  if (!existsSync(BIN)) {
    throw new Error(`no dartmouth binary at ${BIN}: build it (cargo build --release) or set DARTMOUTH_BIN`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "dk-ts-"));
  const created = execFileSync(BIN, ["--data-dir", dataDir, "key", "create", "--principal", "admin"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const adminKey = created.split("\n").map((l) => l.trim()).find((l) => /^dk_[0-9a-f]{20,}$/.test(l));
  if (!adminKey) throw new Error(`key create printed no secret:\n${created}`);

  const child: ChildProcess = spawn(
    BIN,
    ["serve", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
  );
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const m = /listening http=(\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening:\n${output}`));
    });
  });
  return {
    url,
    adminKey,
    dataDir,
    log: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
