/** SIGTERM/SIGINT once: run the graceful handler; a second signal exits at once. */
export function onShutdownSignal(handler: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const on = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.exit(130);
    }
    stopping = true;
    handler(signal).catch((err: unknown) => {
      process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', on);
  process.on('SIGINT', on);
}
