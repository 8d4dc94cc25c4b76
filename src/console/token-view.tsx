// The token view: each generated token a focusable span coloured by its probability, the box that
// shows a token's probability and the model's top alternatives, and the colours' legend.
import type { GeneratedToken } from './generation.js';
import { BANDS, bandOf, percent, visibleToken } from './probability.js';

export interface TokenEvents {
  /** The token under the pointer or with the focus; null when it leaves. */
  onHover(key: string | null): void;
  onFocus(key: string | null): void;
}

/** A choice's tokens; `key` of a token is `${choice}:${index}`, and `activeKey`'s span is described by `tipId`. */
export function TokenSpans({ tokens, choice, activeKey, tipId, events }: { tokens: GeneratedToken[]; choice: number; activeKey: string | null; tipId: string; events: TokenEvents }) {
  return (
    <>
      {tokens.map((t, i) => {
        const key = `${choice}:${i}`;
        const classes = ['tok', t.logprob == null ? 'unscored' : bandOf(t.logprob)];
        if (t.text.includes('\n')) classes.push('nl');
        if (t.special) classes.push('special'); // its name shows through CSS, outside the text
        else if (t.text === '') classes.push('partial'); // the bytes show through CSS, outside the text
        if (t.prompt) classes.push('prompt');
        return (
          <span
            key={key}
            class={classes.join(' ')}
            tabIndex={0}
            data-key={key}
            data-logprob={t.logprob == null ? undefined : String(t.logprob)}
            data-bytes={t.bytes}
            data-special={t.special}
            aria-describedby={activeKey === key ? tipId : undefined}
            onMouseEnter={() => events.onHover(key)}
            onFocus={() => events.onFocus(key)}
            onBlur={() => events.onFocus(null)}
          >
            {t.text}
          </span>
        );
      })}
    </>
  );
}

/** What the tooltip says about one token: its probability and the alternatives, most likely first. */
export function TokenTip({ token, id, tipRef }: { token: GeneratedToken; id: string; tipRef: { current: HTMLDivElement | null } }) {
  return (
    <div ref={tipRef} role="tooltip" id={id} class="tok-tip">
      <p class="tip-head">
        <code class="tip-token">{token.special ?? visibleToken(token.text)}</code>{' '}
        {token.logprob == null ? <span>first prompt token: no probability</span> : <strong class="tip-prob">{percent(token.logprob)}</strong>}
        {token.prompt && <span class="muted"> (prompt)</span>}
      </p>
      {token.logprob != null && <p class="muted tip-logprob">logprob {token.logprob.toFixed(4)}</p>}
      {token.bytes && token.text === '' && <p class="muted">bytes {token.bytes} (part of a character)</p>}
      {token.top.length > 0 && (
        <>
          <p class="tip-caption">Top alternatives</p>
          <ol class="alts">
            {token.top.map((a) => (
              <li class={a.logprob === token.logprob && a.token === (token.special ?? token.text) ? 'chosen' : undefined}>
                <code class="alt-token">{visibleToken(a.token)}</code>
                <span class="alt-prob">{percent(a.logprob)}</span>
              </li>
            ))}
          </ol>
        </>
      )}
    </div>
  );
}

export function Legend() {
  return (
    <div class="legend">
      <span class="legend-title" id="legend-title">
        Token probability
      </span>
      <ul aria-labelledby="legend-title">
        {BANDS.map((b) => (
          <li>
            <span class={`swatch ${b.id}`} aria-hidden="true" />
            {b.label}
          </li>
        ))}
      </ul>
      <span class="muted">Hover or focus a token (Tab, ←/→) for its alternatives; Esc hides them.</span>
    </div>
  );
}
