// Models from the Hugging Face Hub: repo ids, the shared cache, downloads. The lowest layer, like
// src/onnx: nothing here imports the rest of the project.
export { cachedCommit, cachedSnapshotDir, isDir, isFile, knownMissing, repoCacheDir } from './cache.js';
export { RemoteSnapshot, type DownloadEvent, type FetchOptions, type RemoteFile } from './download.js';
export { HubError, networkError, type HubErrorCode } from './errors.js';
export { DEFAULT_REVISION, formatRepoSpec, isCommitHash, parseRepoSpec, type RepoSpec } from './repo-id.js';
export { DEFAULT_ENDPOINT, hubSettings, type HubSettings } from './settings.js';
