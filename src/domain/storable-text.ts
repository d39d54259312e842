declare global {
  interface String {
    /** ES2024, in Node since 20; TypeScript's lib for this project's ES2022 target lacks it. */
    toWellFormed(): string;
  }
}

/**
 * Text a third party sent us (a receiver's response, an SMTP server's reply), as every
 * dialect can store it: PostgreSQL refuses a NUL in text, failing the whole statement, and
 * an unpaired UTF-16 surrogate would read back as U+FFFD anyway. Both become U+FFFD.
 */
export function storableText(text: string): string {
  return text.toWellFormed().replaceAll('\u0000', '\uFFFD');
}
