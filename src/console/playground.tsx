// The playground (#/playground?models=a,b&mode=chat|completions): a chat or a completion, streamed,
// from one model or from two side by side (the same request, the same seed), with every sampling
// option, a token view of the logprobs, and the request as code to copy.
import { useEffect, useRef, useState } from 'preact/hooks';
import { listModels } from './api.js';
import { CodeDialog } from './code-dialog.js';
import { generate, usageLine, type Generation } from './generation.js';
import { Output } from './output.js';
import { PlaygroundOptions } from './playground-options.js';
import { DEFAULT_OPTIONS, FieldError, samplingBody, wantsLogprobs, type Mode, type OptionsForm } from './request-body.js';
import { CODE_KINDS, type CodeKind, type RequestSpec } from './request-code.js';
import { Legend } from './token-view.js';
import { ErrorLine, Field, usePoll } from './ui.js';
import './playground.css';

type PaneId = 'A' | 'B';

/** One chat turn: the user's message and each pane's reply (each model continues its own conversation). */
interface Turn {
  user: string;
  replies: Partial<Record<PaneId, string>>;
}

interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const PATHS: Record<Mode, string> = { chat: '/v1/chat/completions', completions: '/v1/completions' };

const modeOf = (params: URLSearchParams): Mode => (params.get('mode') === 'completions' ? 'completions' : 'chat');
const modelsOf = (params: URLSearchParams): string[] =>
  (params.get('models') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** The conversation as pane `pane`'s model has had it, then `next` from the user. */
function chatMessages(system: string, turns: Turn[], pane: PaneId, next: string): ChatMessage[] {
  const messages: ChatMessage[] = system.trim() ? [{ role: 'system', content: system }] : [];
  for (const t of turns) {
    messages.push({ role: 'user', content: t.user });
    // A pane opened mid-conversation goes on from pane A's replies.
    const reply = t.replies[pane] ?? t.replies.A;
    if (reply != null) messages.push({ role: 'assistant', content: reply });
  }
  messages.push({ role: 'user', content: next });
  return messages;
}

function Pane({ id, model, generation, turns, mode, tokenView, running }: { id: PaneId; model: string; generation: Generation | undefined; turns: Turn[]; mode: Mode; tokenView: boolean; running: boolean }) {
  const shownModel = generation?.model ?? model;
  const earlier = mode === 'chat' ? turns.slice(0, -1) : [];
  const current = mode === 'chat' ? turns.at(-1) : undefined;
  return (
    <section class="panel pane" data-pane={id} aria-labelledby={`pane-${id}-title`}>
      <h2 id={`pane-${id}-title`} class="pane-title">
        {shownModel || 'No model chosen'}
      </h2>
      {(earlier.length > 0 || current) && (
        <ol class="transcript" aria-label="Conversation">
          {earlier.map((t) => (
            <>
              <li class="msg user">
                <span class="role">You</span>
                {t.user}
              </li>
              <li class="msg assistant">
                <span class="role">Assistant</span>
                {t.replies[id] ?? t.replies.A ?? ''}
              </li>
            </>
          ))}
          {current && (
            <li class="msg user">
              <span class="role">You</span>
              {current.user}
            </li>
          )}
        </ol>
      )}
      {mode === 'chat' && current && <span class="role reply-role">Assistant</span>}
      <Output choices={generation?.choices ?? []} tokenView={tokenView} tipId={`tip-${id}`} busy={running && generation?.ended === undefined} />
      <p class="usage muted" role="status">
        {generation && (generation.ended === undefined ? 'Generating…' : generation.error ? 'Failed.' : usageLine(generation))}
      </p>
      <ErrorLine error={generation?.error} />
    </section>
  );
}

export function PlaygroundPage({ params }: { params: URLSearchParams }) {
  const models = usePoll(listModels, 0);
  const [mode, setMode] = useState<Mode>(() => modeOf(params));
  const [modelA, setModelA] = useState(() => modelsOf(params)[0] ?? '');
  const [modelB, setModelB] = useState(() => modelsOf(params)[1] ?? '');
  const [form, setForm] = useState<OptionsForm>(DEFAULT_OPTIONS);
  const [system, setSystem] = useState('');
  const [message, setMessage] = useState('');
  const [prompt, setPrompt] = useState('');
  const [turns, setTurns] = useState<Turn[]>([]);
  const [generations, setGenerations] = useState<Partial<Record<PaneId, Generation>>>({});
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [codeKind, setCodeKind] = useState<CodeKind | null>(null);
  const [lastRequest, setLastRequest] = useState<RequestSpec | null>(null);
  const abort = useRef<AbortController | undefined>(undefined);

  // A link (the fine-tuning page's, say) chooses the models and the mode.
  const paramsKey = params.toString();
  useEffect(() => {
    const wanted = modelsOf(params);
    if (wanted.length) {
      setModelA(wanted[0]!);
      setModelB(wanted[1] ?? '');
    }
    if (params.has('mode')) setMode(modeOf(params));
  }, [paramsKey]);

  const generative = (models.value ?? []).filter((m) => m.task !== 'classification').map((m) => m.id);
  useEffect(() => {
    if (!modelA && generative[0]) setModelA(generative[0]);
  }, [models.value]);
  // A model named by the link is offered even before the list has it (a model just finetuned).
  const choices = [...new Set([...generative, ...[modelA, modelB].filter(Boolean)])];

  const set = <K extends keyof OptionsForm>(key: K, value: OptionsForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const panes: [PaneId, string][] = modelB ? [['A', modelA], ['B', modelB]] : [['A', modelA]];

  /** The request for `model`: throws FieldError for a field that is not valid. */
  const requestFor = (pane: PaneId, model: string, input: string): RequestSpec => {
    if (!model) throw new FieldError('model-a', 'Choose a model.');
    const sampling = samplingBody(form, mode);
    const body = mode === 'chat' ? { model, messages: chatMessages(system, turns, pane, input), ...sampling } : { model, prompt: input, ...sampling };
    return { path: PATHS[mode], body, origin: location.origin };
  };

  const send = async () => {
    const input = mode === 'chat' ? message : prompt;
    let requests: [PaneId, RequestSpec][];
    try {
      if (mode === 'chat' && !input.trim()) throw new FieldError('message', 'Type a message first.');
      requests = panes.map(([p, m]) => [p, requestFor(p, m, input)]);
    } catch (e) {
      setError(e);
      if (e instanceof FieldError) document.querySelector<HTMLElement>(`[name="${e.field}"]`)?.focus();
      return;
    }
    setError(null);
    setLastRequest(requests[0]![1]);
    const controller = new AbortController();
    abort.current = controller;
    setRunning(true);
    setGenerations({});
    const turn = turns.length;
    if (mode === 'chat') {
      setTurns([...turns, { user: input, replies: {} }]);
      setMessage('');
    }
    const results = await Promise.all(requests.map(([p, r]) => generate(r.path, r.body, controller.signal, (g) => setGenerations((all) => ({ ...all, [p]: g })))));
    setRunning(false);
    if (mode !== 'chat') return;
    if (results.every((g) => g.error)) {
      // Nothing answered: the message goes back to the box, to send again after a fix.
      setTurns((ts) => ts.slice(0, turn));
      setMessage(input);
      return;
    }
    const replies: Turn['replies'] = {};
    requests.forEach(([p], i) => {
      if (!results[i]!.error) replies[p] = results[i]!.choices[0]?.text ?? '';
    });
    setTurns((ts) => ts.map((t, i) => (i === turn ? { ...t, replies } : t)));
  };

  const stop = () => abort.current?.abort();

  const clear = () => {
    setTurns([]);
    setGenerations({});
    setError(null);
  };

  const continueFromOutput = () => {
    const out = generations.A?.choices[0]?.text ?? '';
    setPrompt(form.echo ? out : prompt + out);
  };

  /** What the code dialog shows: the request Send would send now, else the last one sent. */
  const codeSpec = (): RequestSpec | Error => {
    const input = mode === 'chat' ? message : prompt;
    try {
      if (mode === 'chat' && !input.trim()) {
        if (lastRequest && lastRequest.path === PATHS.chat) return lastRequest;
        throw new Error('Type a message first: the code is for the request Send would send.');
      }
      return requestFor('A', modelA, input);
    } catch (e) {
      return e as Error;
    }
  };

  const onShortcut = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !running) {
      e.preventDefault();
      void send();
    }
  };

  const tokenView = wantsLogprobs(form, mode);
  const sendLabel = mode === 'chat' ? 'Send' : 'Complete';
  return (
    <>
      <h1>Playground</h1>
      <div class="playground">
        <div class="pg-main">
          <section class="panel compose" aria-label="Request">
            <div class="row">
              <fieldset class="mode">
                <legend>Mode</legend>
                {(['chat', 'completions'] as const).map((m) => (
                  <label>
                    <input
                      type="radio"
                      name="mode"
                      value={m}
                      checked={mode === m}
                      onChange={() => {
                        setMode(m);
                        setGenerations({});
                        setError(null);
                      }}
                    />
                    {m === 'chat' ? 'Chat' : 'Completions'}
                  </label>
                ))}
              </fieldset>
              <Field id="pg-model-a" label="Model">
                <select name="model-a" value={modelA} onChange={(e) => setModelA(e.currentTarget.value)}>
                  {!modelA && <option value="">{models.value ? 'No models served' : 'Loading…'}</option>}
                  {choices.map((id) => (
                    <option value={id}>{id}</option>
                  ))}
                </select>
              </Field>
              <Field id="pg-model-b" label="Compare with">
                <select name="model-b" value={modelB} onChange={(e) => setModelB(e.currentTarget.value)}>
                  <option value="">— none —</option>
                  {choices.map((id) => (
                    <option value={id}>{id}</option>
                  ))}
                </select>
              </Field>
            </div>
            <ErrorLine error={models.error} />
            {mode === 'chat' ? (
              <>
                <Field id="pg-system" label="System message" hint="Optional; sent first in every request.">
                  <textarea name="system" rows={2} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
                </Field>
                <Field id="pg-message" label="Message" hint="Ctrl+Enter sends.">
                  <textarea name="message" rows={3} value={message} onInput={(e) => setMessage(e.currentTarget.value)} onKeyDown={onShortcut} />
                </Field>
              </>
            ) : (
              <Field id="pg-prompt" label="Prompt" hint="Ctrl+Enter completes.">
                <textarea name="prompt" rows={5} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} onKeyDown={onShortcut} />
              </Field>
            )}
            <div class="row actions">
              <button type="button" onClick={() => void send()} disabled={running}>
                {sendLabel}
              </button>
              <button type="button" class="danger" onClick={stop} disabled={!running}>
                Stop
              </button>
              {mode === 'chat' ? (
                <button type="button" class="secondary" onClick={clear} disabled={running || turns.length === 0}>
                  Clear conversation
                </button>
              ) : (
                <button type="button" class="secondary" onClick={continueFromOutput} disabled={running || !generations.A?.choices[0]?.text}>
                  Continue from output
                </button>
              )}
              <span class="spacer" />
              <div class="row copy-as" role="group" aria-labelledby="copy-as-label">
                <span id="copy-as-label" class="muted">
                  Copy as
                </span>
                {CODE_KINDS.map((k) => (
                  <button type="button" class="secondary" aria-label={`Copy as ${k.label}`} onClick={() => setCodeKind(k.id)}>
                    {k.label}
                  </button>
                ))}
              </div>
            </div>
            <ErrorLine error={error} />
          </section>
          {tokenView && <Legend />}
          <div class={`panes${panes.length > 1 ? ' two' : ''}`}>
            {panes.map(([p, m]) => (
              <Pane id={p} model={m} generation={generations[p]} turns={turns} mode={mode} tokenView={tokenView} running={running} />
            ))}
          </div>
        </div>
        <aside class="panel options" aria-labelledby="options-title">
          <PlaygroundOptions form={form} set={set} mode={mode} />
        </aside>
      </div>
      <CodeDialog kind={codeKind} spec={codeKind ? codeSpec() : new Error('')} onKind={setCodeKind} onClose={() => setCodeKind(null)} />
    </>
  );
}
