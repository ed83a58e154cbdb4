// Errors the wallet shows. A ProtocolError names its class as SPEC.md §13.3
// does ("malformed/non-canonical", "signature", …), so tests compare classes
// with the vectors' and people read the message.
export class ProtocolError extends Error {
  constructor(cls, message) {
    super(message);
    this.name = "ProtocolError";
    this.cls = cls;
  }
}

export function malformed(cls, message) {
  return new ProtocolError(cls, message);
}
