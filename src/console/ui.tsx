// Small pieces every page uses: labelled fields, an error line, polling, dates and numbers.
import { cloneElement, type VNode } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { messageOf } from './api.js';

/**
 * A label tied to its one control by id, with the hint as the control's description. Tied rather
 * than wrapped: a wrapping label's name takes in a select's option or a textarea's text ("Model
 * tiny-a"), so screen readers and getByLabel would not see just "Model".
 */
export function Field({ label, hint, id, children }: { label: string; hint?: string; id?: string; children: VNode<{ id?: string; 'aria-describedby'?: string }> }) {
  const auto = useId();
  const control = id ?? children.props.id ?? auto;
  return (
    <div class="field">
      <label class="field-label" for={control}>
        {label}
      </label>
      {cloneElement(children, { id: control, 'aria-describedby': hint ? `${control}-hint` : undefined })}
      {hint && (
        <small class="hint" id={`${control}-hint`}>
          {hint}
        </small>
      )}
    </div>
  );
}

/** A table's column headings. */
export function TableHead({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th scope="col">{c}</th>
        ))}
      </tr>
    </thead>
  );
}

/** The error of the last action, announced to screen readers. */
export function ErrorLine({ error }: { error: unknown }) {
  if (error == null) return null;
  return (
    <p class="error" role="alert">
      {messageOf(error)}
    </p>
  );
}

/**
 * Calls `fn` now and every `ms` while the component is shown (never two at once); `deps` restart it.
 * Returns the last value and the last error.
 */
export function usePoll<T>(fn: () => Promise<T>, ms: number, deps: unknown[] = []): { value: T | undefined; error: unknown; refresh: () => void } {
  const [value, setValue] = useState<T>();
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const v = await fnRef.current();
        if (!stopped) {
          setValue(() => v);
          setError(null);
        }
      } catch (e) {
        if (!stopped) setError(e);
      }
      if (!stopped && ms > 0) timer = setTimeout(run, ms);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [...deps, tick, ms]);
  return { value, error, refresh: () => setTick((t) => t + 1) };
}

export const dateTime = (unix: number | null | undefined): string => (unix ? new Date(unix * 1000).toLocaleString() : '—');

/** 1234567 → '1.23M'. */
export function compact(v: number): string {
  return new Intl.NumberFormat('en', { notation: 'compact', maximumSignificantDigits: 3 }).format(v);
}

export function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}
