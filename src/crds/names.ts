import { DNS1123_LABEL_PATTERN, MAX_REVISION_NAME_LENGTH, MAX_TAG_NAME_LENGTH } from './constants.js';

const DNS1123_LABEL = new RegExp(DNS1123_LABEL_PATTERN);

function labelNameProblems(kind: string, name: string, maxLength: number): string[] {
  const problems: string[] = [];
  if (name.length > maxLength) problems.push(`${kind} name '${name}' is longer than ${maxLength} characters`);
  if (!DNS1123_LABEL.test(name)) problems.push(`${kind} name '${name}' is not a DNS-1123 label`);
  return problems;
}

/** The CRD's admission rules on names, for objects that did not pass through them. */
export const revisionNameProblems = (name: string): string[] =>
  labelNameProblems('revision', name, MAX_REVISION_NAME_LENGTH);

export const tagNameProblems = (name: string): string[] =>
  labelNameProblems('tag', name, MAX_TAG_NAME_LENGTH);
