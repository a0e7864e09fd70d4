/** @module The lines of a host file with their 1-based numbers: no trailing CR (files edited elsewhere), no leading BOM. */

export function* lines(text: string): Generator<[string, number]> {
  let lineNo = 0;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (pos < text.length) {
    lineNo++;
    let end = text.indexOf('\n', pos);
    if (end === -1) end = text.length;
    const line = text.slice(pos, end);
    pos = end + 1;
    yield [line.endsWith('\r') ? line.slice(0, -1) : line, lineNo];
  }
}
