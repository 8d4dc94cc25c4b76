// The record shapes a dataset can hold after validation, and the Dataset union parseDataset
// returns. Records are normalised copies: only the fields we use, with their types checked, so
// later stages never re-validate (and unknown extra keys in the upload cannot leak through).

export type Role = 'system' | 'user' | 'assistant';
export const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

export interface ChatMessage {
  role: Role;
  content: string;
  /**
   * Assistant turns only (OpenAI's fine-tuning format): 1 = train on this turn (the default when
   * absent), 0 = context only. Never set on system/user messages.
   */
  weight?: 0 | 1;
}

/** OpenAI chat fine-tuning format: `{"messages": [...]}`. */
export interface ChatRecord {
  messages: ChatMessage[];
}

/** OpenAI's legacy completion format: `{"prompt", "completion"}`. */
export interface PromptCompletionRecord {
  prompt: string;
  completion: string;
}

/** Stanford Alpaca / the book's chapter 7 format. `input` is '' when absent. */
export interface AlpacaRecord {
  instruction: string;
  input: string;
  output: string;
}

/** Text classification: `{"text", "label"}`; all labels of one file are strings or all integers. */
export interface ClassificationRecord {
  text: string;
  label: string | number;
}

/** Records the instruction template (and so instruction finetuning) accepts. */
export type InstructionRecord = ChatRecord | PromptCompletionRecord | AlpacaRecord;

export type DatasetFormat = 'chat' | 'prompt_completion' | 'alpaca' | 'classification';

interface DatasetBase {
  /** 1-based source line of each record (parallel to `records`), for errors found later (e.g. too long). */
  lines: number[];
  /** How the file was laid out: one JSON object per line, or one top-level JSON array. */
  container: 'jsonl' | 'json_array';
}

export type Dataset =
  | (DatasetBase & { format: 'chat'; records: ChatRecord[] })
  | (DatasetBase & { format: 'prompt_completion'; records: PromptCompletionRecord[] })
  | (DatasetBase & { format: 'alpaca'; records: AlpacaRecord[] })
  | (DatasetBase & {
      format: 'classification';
      records: ClassificationRecord[];
      /**
       * Sorted distinct labels (integers sorted numerically, then written as strings). A record's
       * class id is the index of its label here; see classIds().
       */
      labels: string[];
      labelType: 'string' | 'integer';
    });
