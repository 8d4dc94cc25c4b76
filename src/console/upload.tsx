// Uploading a dataset: a drop zone around a native file input (so the keyboard and screen readers
// get the browser's own control), and a rejected file's error led by the line the server names.
import { useRef, useState } from 'preact/hooks';
import { ApiError, messageOf } from './api.js';
import { lineOf, uploadDataset, type DatasetFile } from './fine-tuning-api.js';
import { ErrorLine } from './ui.js';

/** The server's message with the line it names first: 'Line 3: Invalid file: bad.jsonl: malformed JSON …'. */
function uploadError(e: unknown): Error {
  const message = messageOf(e);
  const line = e instanceof ApiError && e.status === 400 ? lineOf(message) : undefined;
  return new Error(line === undefined ? message : `Line ${line}: ${message.replace(`line ${line}: `, '')}`);
}

export function DatasetUpload({ onUploaded }: { onUploaded: (file: DatasetFile) => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<DatasetFile | null>(null);

  const upload = async (file: File | undefined) => {
    if (!file) return;
    setBusy(file.name);
    setError(null);
    setDone(null);
    try {
      const stored = await uploadDataset(file);
      setDone(stored);
      onUploaded(stored);
    } catch (e) {
      setError(uploadError(e));
    } finally {
      setBusy(null);
      if (input.current) input.current.value = ''; // choosing the same file again uploads it again
    }
  };

  return (
    <div
      class={`drop-zone${over ? ' over' : ''}`}
      data-testid="drop-zone"
      onDragEnter={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragOver={(e) => {
        e.preventDefault(); // without this the browser opens the dropped file instead
        if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        void upload(e.dataTransfer?.files[0]);
      }}
    >
      <p class="drop-hint">
        Drop a dataset here (JSONL or a JSON array: Alpaca <code>{'{instruction, input, output}'}</code>, chat <code>{'{messages}'}</code>,{' '}
        <code>{'{prompt, completion}'}</code> or classification <code>{'{text, label}'}</code>), or choose one:
      </p>
      <label class="field">
        <span class="field-label">Dataset file</span>
        <input ref={input} type="file" accept=".jsonl,.json,application/json,application/jsonl" disabled={busy !== null} onChange={(e) => void upload(e.currentTarget.files?.[0])} />
      </label>
      <p class="upload-status" aria-live="polite">
        {busy !== null ? `Uploading ${busy}…` : done ? `Uploaded ${done.filename} as ${done.id}.` : ''}
      </p>
      <ErrorLine error={error} />
    </div>
  );
}
