// The console's shell: the page bar, the API-key dialog and the current page.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { apiKey, onKeyNeeded } from './api.js';
import { FineTuningPage } from './fine-tuning.js';
import { ModelsPage } from './models.js';
import { PlaygroundPage } from './playground.js';
import { href, PAGES, useRoute } from './route.js';
import { ServerPage } from './server.js';
import './style.css';

/** Asks for an API key when the server answers 401; the key is kept for this tab only. */
function KeyDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const [reason, setReason] = useState('');
  const answer = useRef<((key: string | null) => void) | undefined>(undefined);
  useEffect(() => {
    onKeyNeeded(
      (why) =>
        new Promise((resolve) => {
          answer.current = resolve;
          setReason(apiKey.get() ? `The key was refused (${why}). Enter another one.` : 'This server needs an API key.');
          dialog.current!.showModal();
          input.current!.value = '';
          input.current!.focus();
        }),
    );
  }, []);
  const close = (key: string | null) => {
    dialog.current!.close();
    answer.current?.(key);
    answer.current = undefined;
  };
  return (
    <dialog ref={dialog} class="key-dialog" aria-labelledby="key-title" onCancel={() => close(null)}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          close(input.current!.value.trim() || null);
        }}
      >
        <h2 id="key-title">API key</h2>
        <p>{reason}</p>
        <label class="field">
          <span class="field-label">Key (sent as 'Authorization: Bearer …', kept for this tab only)</span>
          <input ref={input} type="password" name="key" autocomplete="off" required />
        </label>
        <div class="row">
          <button type="submit">Use key</button>
          <button type="button" class="secondary" onClick={() => close(null)}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

function App() {
  const route = useRoute();
  const title = PAGES.find((p) => p.id === route.page)!.title;
  useEffect(() => {
    document.title = `${title} · ScratchGPT`;
  }, [title]);
  return (
    <>
      <header class="bar">
        <strong>ScratchGPT</strong>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <a href={href(p.id)} aria-current={p.id === route.page ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
          <a href="/docs">API reference</a>
        </nav>
      </header>
      <main id="page" aria-label={title}>
        {route.page === 'playground' && <PlaygroundPage params={route.params} />}
        {route.page === 'fine-tuning' && <FineTuningPage params={route.params} />}
        {route.page === 'models' && <ModelsPage />}
        {route.page === 'server' && <ServerPage />}
      </main>
      <KeyDialog />
    </>
  );
}

render(<App />, document.getElementById('app')!);
