// Tool calling on /v1/chat/completions (OpenAI's tools, tool_choice, parallel_tool_calls).
//
// How our models are prompted and constrained (docs/server.md, "Tool calling"):
// - The tools offered are listed in a system message (TOOLS_HEADER, one JSON line per function).
// - A call is written as MARKER followed by a compact JSON array of calls,
//   `<tool_call>[{"name":"f","arguments":{…}}]`; earlier calls in the conversation are rendered
//   that way in the assistant's turn, and tool results as a user turn "Tool result (name, id): …".
// - tool_choice 'required' or a named function: the answer is constrained to the JSON array alone
//   (json_schema: anyOf over the allowed functions, name const, arguments = the parameters).
// - 'auto': the answer is constrained to either text that does not begin with MARKER, or MARKER
//   followed by that array (constraint type 'tool_or_text'); the model chooses by its first tokens.
// - 'none', or no tools: no tool section, no constraint: as without tools.
import { z } from 'zod';
import type { ConstraintSpec } from '../model/constraint.js';
import type { ChatMessage } from '../model/chat-template.js';
import { badRequest } from './errors.js';
import { checkConstraint, OPENAI_NAME } from './sampling.js';

/** What begins a call in the model's output (auto) and in earlier assistant turns. */
export const MARKER = '<tool_call>';
export const TOOLS_HEADER = 'You can call these functions (one JSON object per line):';

export const toolSchema = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: OPENAI_NAME,
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) }),
]);

export const toolCallSchema = z.strictObject({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.strictObject({ name: z.string(), arguments: z.string() }),
});

export const toolFields = {
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
};

type Tool = z.infer<typeof toolSchema>;
type ToolCall = z.infer<typeof toolCallSchema>;

/** A request message after validation (chat.ts's schema). */
export type RequestMessage =
  | { role: 'system' | 'developer' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] | null }
  | { role: 'tool'; content: string; tool_call_id: string };

export interface ToolPlan {
  /** 'text': no tools in play; 'required': the answer is calls; 'auto': text or calls. */
  mode: 'text' | 'required' | 'auto';
  /** Functions listed in the prompt (all tools unless tool_choice is 'none'). */
  offered: Tool[];
  constraint?: ConstraintSpec;
}

/** A function's parameters as the schema of its arguments: an object, any object when absent. */
function argumentsSchema(tool: Tool, i: number): Record<string, unknown> {
  const p = tool.function.parameters;
  if (p == null || Object.keys(p).length === 0) return { type: 'object' };
  if (p.type === undefined) return { type: 'object', ...p };
  if (p.type !== 'object') throw badRequest(`Invalid 'tools[${i}].function.parameters': the parameters must be a JSON Schema of type 'object', got type ${JSON.stringify(p.type)}.`, `tools[${i}].function.parameters`, 'invalid_parameter');
  return p;
}

/** Local $refs ('#…') of a schema moved under `#/$defs/<key>`, where the schema is placed. */
function rebase(v: unknown, key: string): unknown {
  if (Array.isArray(v)) return v.map((x) => rebase(x, key));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === '$ref' && typeof x === 'string' && x.startsWith('#') ? `#/$defs/${key}${x.slice(1)}` : rebase(x, key)]));
}

/**
 * The JSON Schema of the call array, each call {"name": const, "arguments": parameters} of one
 * allowed function: exactly one call, or with `parallel` one or more (no upper bound but
 * max_tokens: a bound would be unrolled into that many copies of every function's automaton).
 */
export function callsSchema(tools: Tool[], parallel: boolean): object {
  const $defs: Record<string, unknown> = {};
  const calls = tools.map((t, i) => {
    $defs[`tool${i}`] = rebase(argumentsSchema(t, i), `tool${i}`);
    return { type: 'object', properties: { name: { const: t.function.name }, arguments: { $ref: `#/$defs/tool${i}` } }, required: ['name', 'arguments'], additionalProperties: false };
  });
  return { type: 'array', items: calls.length === 1 ? calls[0] : { anyOf: calls }, minItems: 1, ...(parallel ? {} : { maxItems: 1 }), $defs };
}

/** Checks the tool fields against each other and the engine, and plans the answer. */
export function planTools(b: { tools?: Tool[] | null; tool_choice?: z.infer<typeof toolChoiceSchema> | null; parallel_tool_calls?: boolean | null }): ToolPlan {
  const tools = b.tools ?? [];
  const choice = b.tool_choice ?? (tools.length ? 'auto' : 'none');
  if (b.tool_choice != null && b.tool_choice !== 'none' && !tools.length) throw badRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (seen.has(t.function.name)) throw badRequest(`Invalid 'tools[${i}].function.name': duplicate function name '${t.function.name}'.`, `tools[${i}].function.name`);
    seen.add(t.function.name);
    // Each function's parameters compiled alone, so that the 400 names the function.
    checkConstraint({ type: 'json_schema', schema: argumentsSchema(t, i) }, `tools[${i}].function.parameters`);
  });
  if (choice === 'none' || !tools.length) return { mode: 'text', offered: [] };
  let allowed = tools;
  if (typeof choice === 'object') {
    allowed = tools.filter((t) => t.function.name === choice.function.name);
    if (!allowed.length) throw badRequest(`Invalid 'tool_choice': no function named '${choice.function.name}' in 'tools'.`, 'tool_choice');
  }
  const schema = callsSchema(allowed, b.parallel_tool_calls !== false);
  const constraint = checkConstraint(choice === 'auto' ? { type: 'tool_or_text', marker: MARKER, schema } : { type: 'json_schema', schema }, 'tools');
  return { mode: choice === 'auto' ? 'auto' : 'required', offered: tools, constraint };
}

/** A call's arguments as written back into a prompt: compact JSON when they parse, else as given. */
function argumentsText(s: string): string {
  try {
    return JSON.stringify(JSON.parse(s));
  } catch {
    return JSON.stringify(s);
  }
}

/**
 * Request messages → template messages: the tool list as a system message, assistant calls as
 * MARKER + their JSON array, tool results (consecutive ones joined) as one user message.
 * Throws the 400 for a tool message whose tool_call_id answers no earlier call.
 */
export function toolMessages(messages: RequestMessage[], plan: ToolPlan): ChatMessage[] {
  const out: ChatMessage[] = [];
  const calls = new Map<string, string>(); // id → function name
  let toolTurn: string[] | undefined;
  messages.forEach((m, i) => {
    if (m.role === 'tool') {
      const name = calls.get(m.tool_call_id);
      if (name === undefined) throw badRequest(`Invalid 'messages[${i}].tool_call_id': '${m.tool_call_id}' answers no tool call of an earlier assistant message.`, `messages[${i}].tool_call_id`);
      const text = `Tool result (${name}, ${m.tool_call_id}): ${m.content}`;
      if (toolTurn) toolTurn.push(text);
      else {
        toolTurn = [text];
        out.push({ role: 'user', content: '' });
      }
      out.at(-1)!.content = toolTurn.join('\n');
      return;
    }
    toolTurn = undefined;
    if (m.role === 'assistant') {
      const tc = m.tool_calls ?? [];
      if (!tc.length && m.content == null) throw badRequest(`Invalid 'messages[${i}].content': an assistant message needs content or tool_calls.`, `messages[${i}].content`);
      for (const c of tc) calls.set(c.id, c.function.name);
      const callText = tc.length ? MARKER + `[${tc.map((c) => `{"name":${JSON.stringify(c.function.name)},"arguments":${argumentsText(c.function.arguments)}}`).join(',')}]` : '';
      out.push({ role: 'assistant', content: [m.content ?? '', callText].filter(Boolean).join('\n') });
      return;
    }
    out.push({ role: m.role, content: m.content });
  });
  if (plan.offered.length) {
    const lines = plan.offered.map((t) => JSON.stringify({ name: t.function.name, ...(t.function.description ? { description: t.function.description } : {}), parameters: t.function.parameters ?? {} }));
    const how = `To call functions, answer with ${MARKER} followed by a JSON array of calls: [{"name": "<function name>", "arguments": {<the parameters>}}].`;
    const section = [TOOLS_HEADER, ...lines, how].join('\n');
    if (out[0]?.role === 'system') out[0] = { role: 'system', content: `${out[0].content}\n\n${section}` };
    else out.unshift({ role: 'system', content: section });
  }
  return out;
}

export interface ParsedCall {
  id: string;
  name: string;
  arguments: string;
}

export type CallEvent = { type: 'call'; index: number; id: string; name: string } | { type: 'arguments'; index: number; text: string };

const HEAD = /^\{"name":"([A-Za-z0-9_-]*)","arguments":/;

export function newCallId(): string {
  return `call_${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

/**
 * Reads the constrained call array as it is generated: `[` then calls `{"name":"…","arguments":{…}}`
 * separated by `,`, then `]` (compact JSON, as the constraint generates it). Emits each call's
 * start and its argument text as it arrives; a cut-off answer leaves its last call's arguments cut.
 */
export class CallParser {
  readonly calls: ParsedCall[] = [];
  private buf = '';
  private pos = 0;
  private state: 'open' | 'head' | 'args' | 'close' | 'sep' | 'done' | 'bad' = 'open';
  private depth = 0;
  private inString = false;
  private escape = false;

  /** The closing ']' has been read: every call is whole. */
  get complete(): boolean {
    return this.state === 'done';
  }

  push(text: string): CallEvent[] {
    this.buf += text;
    const out: CallEvent[] = [];
    for (;;) {
      const rest = this.buf.slice(this.pos);
      if (!rest) return out;
      switch (this.state) {
        case 'open':
          if (rest[0] !== '[') return this.fail(out);
          this.pos++;
          this.state = 'head';
          break;
        case 'head': {
          const m = HEAD.exec(rest);
          if (!m) return '{"name":"'.startsWith(rest.slice(0, 9)) && !rest.includes('","arguments":') ? out : this.fail(out);
          const call = { id: newCallId(), name: m[1]!, arguments: '' };
          this.calls.push(call);
          out.push({ type: 'call', index: this.calls.length - 1, id: call.id, name: call.name });
          this.pos += m[0].length;
          this.state = 'args';
          this.depth = 0;
          break;
        }
        case 'args': {
          let i = 0;
          for (; i < rest.length; i++) {
            const ch = rest[i]!;
            if (this.inString) {
              if (this.escape) this.escape = false;
              else if (ch === '\\') this.escape = true;
              else if (ch === '"') this.inString = false;
            } else if (ch === '"') this.inString = true;
            else if (ch === '{' || ch === '[') this.depth++;
            else if (ch === '}' || ch === ']') {
              this.depth--;
              if (this.depth === 0) {
                i++;
                this.state = 'close';
                break;
              }
            }
          }
          const piece = rest.slice(0, i);
          this.pos += i;
          const call = this.calls.at(-1)!;
          call.arguments += piece;
          out.push({ type: 'arguments', index: this.calls.length - 1, text: piece });
          break;
        }
        case 'close':
          if (rest[0] !== '}') return this.fail(out);
          this.pos++;
          this.state = 'sep';
          break;
        case 'sep':
          if (rest[0] === ',') this.state = 'head';
          else if (rest[0] === ']') this.state = 'done';
          else return this.fail(out);
          this.pos++;
          break;
        case 'done':
        case 'bad':
          return out;
      }
    }
  }

  private fail(out: CallEvent[]): CallEvent[] {
    this.state = 'bad';
    return out;
  }
}

/**
 * One choice's answer under a tool plan, read as it is generated: in 'auto' mode text is held
 * back while it may still be the MARKER, then goes out as content, or, after the marker, the rest
 * goes to a CallParser; in 'required' mode all of it does.
 */
export class ToolAnswer {
  content = '';
  readonly parser = new CallParser();
  private mode: 'undecided' | 'text' | 'calls';
  private held = '';

  constructor(plan: ToolPlan) {
    this.mode = plan.mode === 'required' ? 'calls' : plan.mode === 'text' ? 'text' : 'undecided';
  }

  get isCalls(): boolean {
    return this.mode === 'calls';
  }

  /** Content text to emit now, and call events. */
  push(text: string): { content: string; events: CallEvent[] } {
    if (this.mode === 'undecided') {
      this.held += text;
      if (this.held.startsWith(MARKER)) {
        this.mode = 'calls';
        text = this.held.slice(MARKER.length);
      } else if (MARKER.startsWith(this.held)) return { content: '', events: [] };
      else {
        this.mode = 'text';
        text = this.held;
      }
      this.held = '';
    }
    if (this.mode === 'text') {
      this.content += text;
      return { content: text, events: [] };
    }
    return { content: '', events: this.parser.push(text) };
  }

  /** At the end: text still held (a cut-off prefix of the marker) is content after all. */
  flush(): string {
    if (this.mode !== 'undecided' || !this.held) return '';
    const t = this.held;
    this.held = '';
    this.mode = 'text';
    this.content += t;
    return t;
  }
}
