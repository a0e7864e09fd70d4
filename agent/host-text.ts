/**
 * @module Host files as text. A NUL byte in a text file (a cron line, a unit file, a dpkg status field)
 * becomes U+2400 (SYMBOL FOR NULL, shown as a NUL would be meant): the controller's store cannot hold
 * U+0000 and refuses it, and a refused scan would hide the very line an intruder planted. The line
 * still shows, changed, so the drift is still reported; the manifest is built through the same
 * function, so digests agree on both sides.
 */
export function hostText(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\u2400') : text;
}
