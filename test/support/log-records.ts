/** Checks on log records as the hub writes them (JSON lines). */

/** Keys that appear twice in one JSON object of `text` (JSON.parse would keep only the last). */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  const objects: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const value = JSON.parse(text.slice(i, j + 1)) as string;
      i = j;
      let k = j + 1;
      while (text[k] === ' ') k++;
      const keys = objects.at(-1);
      if (text[k] === ':' && keys) {
        if (keys.has(value)) found.push(value);
        keys.add(value);
      }
    } else if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(null);
    else if (c === '}' || c === ']') objects.pop();
  }
  return found;
}
