// The current request as code to copy (curl, Python, Node), in a modal dialog with a Copy button.
import { useEffect, useRef, useState } from 'preact/hooks';
import { CODE_KINDS, codeFor, type CodeKind, type RequestSpec } from './request-code.js';

/** Copies `text`; where the clipboard is refused (no permission, http: off localhost), selects `pre`'s text for Ctrl+C. */
async function copy(text: string, pre: HTMLElement): Promise<'copied' | 'selected'> {
  try {
    await navigator.clipboard.writeText(text);
    return 'copied';
  } catch {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const selection = getSelection()!;
    selection.removeAllRanges();
    selection.addRange(range);
    return 'selected';
  }
}

/** Open while `kind` is set; `spec` is the request it shows, or the reason there is none. */
export function CodeDialog({ kind, spec, onKind, onClose }: { kind: CodeKind | null; spec: RequestSpec | Error; onKind: (k: CodeKind) => void; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const pre = useRef<HTMLPreElement>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => {
    const d = dialog.current!;
    if (kind && !d.open) d.showModal();
    if (!kind && d.open) d.close();
    setCopied('');
  }, [kind]);
  const code = kind && !(spec instanceof Error) ? codeFor(kind, spec) : '';
  return (
    <dialog ref={dialog} class="code-dialog" aria-labelledby="code-title" onClose={onClose}>
      <div class="code-head">
        <h2 id="code-title">Request as code</h2>
        <div class="row" role="group" aria-label="Language">
          {CODE_KINDS.map((k) => (
            <button type="button" class={k.id === kind ? undefined : 'secondary'} aria-pressed={k.id === kind} onClick={() => onKind(k.id)}>
              {k.label}
            </button>
          ))}
        </div>
      </div>
      {spec instanceof Error ? (
        <p class="error">{spec.message}</p>
      ) : (
        <>
          <p class="muted">
            Sends the request without streaming. The key is read from <code>SCRATCHGPT_API_KEY</code>; a server without keys ignores it.
          </p>
          <pre ref={pre} class="code" tabIndex={0} aria-label={`${kind ?? ''} code`}>
            {code}
          </pre>
        </>
      )}
      <div class="row">
        {!(spec instanceof Error) && (
          <button type="button" onClick={async () => setCopied((await copy(code, pre.current!)) === 'copied' ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C to copy.')}>
            Copy
          </button>
        )}
        <button type="button" class="secondary" onClick={() => dialog.current!.close()}>
          Close
        </button>
        <span role="status" class="muted">
          {copied}
        </span>
      </div>
    </dialog>
  );
}
