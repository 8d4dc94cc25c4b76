// Public API of the datasets module: upload validation, the book's instruction template and
// collate function, splits, classification batches and SpamAssassin cleaning.
export { DatasetError, type DatasetErrorLocation } from './errors.js';
export type {
  AlpacaRecord,
  ChatMessage,
  ChatRecord,
  ClassificationRecord,
  Dataset,
  DatasetFormat,
  InstructionRecord,
  PromptCompletionRecord,
  Role,
} from './records.js';
export { parseDataset, sortedLabels } from './parse.js';
export { formatInput, alpacaExample, PREAMBLE, RESPONSE_HEADER, type InstructionExample } from './template.js';
export { chatHistoryToInstruction, chatToAlpaca } from './chat.js';
export { formatChatPrompt, formatPrompt, toAlpaca, toInstructionExample, toInstructionExamples } from './instruction.js';
export {
  collateInstructions,
  encodeInstruction,
  IGNORE_INDEX,
  row,
  type CollateInstructionOptions,
  type EncodedInstruction,
  type InstructionBatch,
} from './collate-instructions.js';
export { bookInstructionSplit, shuffle, splitByRatio } from './split.js';
export { balanceClasses } from './balance.js';
export {
  classIds,
  collateClassification,
  encodeText,
  longestEncodedLength,
  type ClassificationBatch,
  type CollateClassificationOptions,
} from './classification.js';
export { cleanEmail } from './email.js';
export { htmlToText } from './html.js';
export { groupLabel, spamAssassinRecords, type SpamAssassinMessage, type SpamRecord } from './spam-assassin.js';
