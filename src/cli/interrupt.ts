// Ctrl-C for the training commands: the first aborts the returned signal (the loop checkpoints at
// the end of its step and stops), a second quits at once.

export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const onSigint = () => {
    if (ctl.signal.aborted) process.exit(130);
    ctl.abort();
    process.stderr.write('\ninterrupted: checkpointing at the end of this step (Ctrl-C again to quit without saving)\n');
  };
  process.on('SIGINT', onSigint);
  return { signal: ctl.signal, dispose: () => process.off('SIGINT', onSigint) };
}
