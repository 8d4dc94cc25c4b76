// A pane's generated text: each choice as plain text, or as tokens with the tooltip of the one
// hovered or focused (one tooltip per pane, placed under its token).
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ChoiceOutput } from './generation.js';
import { TokenSpans, TokenTip, type TokenEvents } from './token-view.js';

function tokenAt(choices: ChoiceOutput[], key: string | null) {
  if (key == null) return undefined;
  const [c, i] = key.split(':').map(Number);
  return choices[c!]?.tokens[i!];
}

/** The tokens' focus moves with ←/→ as well as Tab. */
function moveFocus(from: HTMLElement, step: number) {
  const all = Array.from(from.closest('.output')!.querySelectorAll<HTMLElement>('.tok'));
  all[all.indexOf(from) + step]?.focus();
}

/** `busy` while streaming: the live region announces the text once it is whole. */
export function Output({ choices, tokenView, tipId, busy }: { choices: ChoiceOutput[]; tokenView: boolean; tipId: string; busy: boolean }) {
  const [hovered, setHovered] = useState<string | null>(null);
  const [focused, setFocused] = useState<string | null>(null);
  const [dismissed, setDismissed] = useState<string | null>(null);
  const wrap = useRef<HTMLDivElement>(null);
  const tip = useRef<HTMLDivElement>(null);
  const activeKey = hovered ?? focused;
  const shown = activeKey !== dismissed ? activeKey : null;
  const token = tokenAt(choices, shown);
  const events: TokenEvents = {
    onHover: (key) => {
      setHovered(key);
      setDismissed(null);
    },
    onFocus: (key) => {
      setFocused(key);
      setDismissed(null);
    },
  };

  // Placed from the token's box: under it, kept inside the pane's width.
  useLayoutEffect(() => {
    if (!token || !tip.current || !wrap.current) return;
    const anchor = wrap.current.querySelector<HTMLElement>(`[data-key="${shown}"]`);
    if (!anchor) return;
    const box = wrap.current.getBoundingClientRect();
    const a = anchor.getClientRects()[0] ?? anchor.getBoundingClientRect();
    const width = tip.current.offsetWidth;
    tip.current.style.top = `${a.bottom - box.top + 6}px`;
    tip.current.style.left = `${Math.max(0, Math.min(a.left - box.left, box.width - width))}px`;
  });

  const many = choices.length > 1;
  return (
    <div
      ref={wrap}
      class="output-wrap"
      onMouseLeave={() => setHovered(null)}
      onKeyDown={(e) => {
        const target = e.target as HTMLElement;
        if (e.key === 'Escape' && shown) {
          setDismissed(shown);
          e.preventDefault();
        } else if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && target.classList.contains('tok')) {
          moveFocus(target, e.key === 'ArrowRight' ? 1 : -1);
          e.preventDefault();
        }
      }}
    >
      <div class={`output${tokenView ? ' tokens' : ''}`} aria-live="polite" aria-busy={busy}>
        {choices.map((c, i) => {
          const body = tokenView && c.tokens.length ? <TokenSpans tokens={c.tokens} choice={i} activeKey={shown} tipId={tipId} events={events} /> : c.text;
          if (!many) return body;
          return (
            <div class="choice">
              <h3 class="choice-title">
                Choice {i + 1}
                {c.finish && <span class="muted"> · {c.finish}</span>}
              </h3>
              <div class="choice-text">{body}</div>
            </div>
          );
        })}
      </div>
      {token && <TokenTip token={token} id={tipId} tipRef={tip} />}
    </div>
  );
}
