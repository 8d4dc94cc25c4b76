// The models and files page: what is served (finetuned models can be deleted, any model opened in
// the playground) and the uploaded datasets (downloaded or deleted).
import { useState } from 'preact/hooks';
import { ApiError, del, listModels, request } from './api.js';
import { listFiles, type DatasetFile } from './fine-tuning-api.js';
import { href } from './route.js';
import { bytes, dateTime, ErrorLine, TableHead, usePoll } from './ui.js';

/** The files, or null when this server runs without a data folder (fine-tuning off). */
async function filesOrOff(): Promise<DatasetFile[] | null> {
  try {
    return await listFiles();
  } catch (e) {
    if (e instanceof ApiError && e.code === 'fine_tuning_disabled') return null;
    throw e;
  }
}

/** Downloads a file's content with the API key (a plain link could not send it). */
async function download(f: DatasetFile): Promise<void> {
  const blob = await (await request(`/v1/files/${f.id}/content`)).blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = f.filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 0);
}

export function ModelsPage() {
  const models = usePoll(listModels, 0);
  const files = usePoll(filesOrOff, 0);
  const [error, setError] = useState<unknown>(null);
  const act = async (what: () => Promise<unknown>, then: () => void) => {
    setError(null);
    try {
      await what();
      then();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <h1>Models &amp; files</h1>
      <ErrorLine error={error} />
      <section class="panel" aria-labelledby="models-title">
        <h2 id="models-title">Served models</h2>
        <ErrorLine error={models.error} />
        <table>
          <TableHead columns={['Model', 'Kind', 'Context', 'Created', 'Actions']} />
          <tbody>
            {models.value?.map((m) => (
              <tr key={m.id} data-model={m.id}>
                <td class="mono">{m.id}</td>
                <td>{m.task === 'classification' ? 'classifier' : m.owned_by === 'user' ? 'finetuned' : 'base'}</td>
                <td>{m.max_model_len} tokens</td>
                <td>{dateTime(m.created)}</td>
                <td class="row">
                  {m.task !== 'classification' && <a href={href('playground', { models: m.id })}>Open in playground</a>}
                  {m.owned_by === 'user' && (
                    <button
                      class="danger"
                      aria-label={`Delete ${m.id}`}
                      onClick={() => confirm(`Delete the model ${m.id}? Its files are removed from the server.`) && act(() => del(`/v1/models/${m.id}`), models.refresh)}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="panel" aria-labelledby="files-title">
        <h2 id="files-title">Files</h2>
        <ErrorLine error={files.error} />
        {files.value === null ? (
          <p class="muted">Fine-tuning is off on this server: start it with a data folder (scratchgpt serve --data-dir DIR).</p>
        ) : files.value?.length === 0 ? (
          <p class="muted">No files yet: upload a dataset on the Fine-tuning page.</p>
        ) : (
          <table>
            <TableHead columns={['File', 'Name', 'Size', 'Uploaded', 'Actions']} />
            <tbody>
              {files.value?.map((f) => (
                <tr key={f.id} data-file={f.id}>
                  <td class="mono">{f.id}</td>
                  <td>{f.filename}</td>
                  <td>{bytes(f.bytes)}</td>
                  <td>{dateTime(f.created_at)}</td>
                  <td class="row">
                    <button class="secondary" aria-label={`Download ${f.filename}`} onClick={() => act(() => download(f), () => {})}>
                      Download
                    </button>
                    <button class="danger" aria-label={`Delete ${f.filename}`} onClick={() => confirm(`Delete ${f.filename} (${f.id})?`) && act(() => del(`/v1/files/${f.id}`), files.refresh)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
