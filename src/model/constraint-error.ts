// The one error a constraint that cannot be compiled throws: the server turns it into a 400 that
// names the request field the constraint came from.
export class ConstraintError extends Error {
  override readonly name = 'ConstraintError';
}
