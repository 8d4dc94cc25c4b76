// Pages are addressed by the URL's hash (#/fine-tuning, #/playground?models=a,b), so links,
// reloads and the back button work without any server routes.
import { useEffect, useState } from 'preact/hooks';

export const PAGES = [
  { id: 'playground', title: 'Playground' },
  { id: 'fine-tuning', title: 'Fine-tuning' },
  { id: 'models', title: 'Models & files' },
  { id: 'server', title: 'Server' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

export interface Route {
  page: PageId;
  params: URLSearchParams;
}

function current(): Route {
  const [p = '', q = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const page = PAGES.find((x) => x.id === p)?.id ?? 'playground';
  return { page, params: new URLSearchParams(q) };
}

export function href(page: PageId, params: Record<string, string> = {}): string {
  const q = new URLSearchParams(params).toString();
  return `#/${page}${q ? `?${q}` : ''}`;
}

export function navigate(page: PageId, params: Record<string, string> = {}): void {
  location.hash = href(page, params);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
