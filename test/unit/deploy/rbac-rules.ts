/**
 * The API server's RBAC escalation check, restated: creating or updating a role (or binding one) is
 * allowed without `escalate`/`bind` only if the requester's rules cover every rule of the role. Rules
 * are broken down to single (group, resource, verb) triples; each must be matched by one owner rule,
 * and a wildcard in the role is only matched by a wildcard (`*` resources, `*` verbs), except that an
 * owner entry naming only a subresource (a star, a slash, then e.g. `status`) matches it on any resource.
 */
export interface PolicyRule {
  apiGroups?: string[] | undefined;
  resources?: string[] | undefined;
  verbs: string[];
  resourceNames?: string[] | undefined;
  nonResourceURLs?: string[] | undefined;
}

const ALL = '*';

function includesAll(set: readonly string[], wanted: readonly string[]): boolean {
  return wanted.every((item) => set.includes(item));
}

function resourcesCovered(owner: readonly string[], wanted: readonly string[]): boolean {
  if (owner.includes(ALL) || includesAll(owner, wanted)) return true;
  return wanted.every((resource) => {
    if (owner.includes(resource)) return true;
    const slash = resource.indexOf('/');
    return slash >= 0 && owner.includes(`${ALL}/${resource.slice(slash + 1)}`);
  });
}

/** Whether `owner` alone covers `wanted`, one owner rule against one broken-down rule. */
export function ruleCovers(owner: PolicyRule, wanted: PolicyRule): boolean {
  const verbs = owner.verbs.includes(ALL) || includesAll(owner.verbs, wanted.verbs);
  const groups =
    (owner.apiGroups ?? []).includes(ALL) || includesAll(owner.apiGroups ?? [], wanted.apiGroups ?? []);
  const resources = resourcesCovered(owner.resources ?? [], wanted.resources ?? []);
  const ownerNames = owner.resourceNames ?? [];
  const wantedNames = wanted.resourceNames ?? [];
  const names =
    wantedNames.length === 0
      ? ownerNames.length === 0
      : ownerNames.length === 0 || includesAll(ownerNames, wantedNames);
  return verbs && groups && resources && names;
}

/** One rule per (group, resource, verb) — or per (URL, verb) for non-resource rules. */
export function breakDown(rule: PolicyRule): PolicyRule[] {
  const single: PolicyRule[] = [];
  for (const group of rule.apiGroups ?? []) {
    for (const resource of rule.resources ?? []) {
      for (const verb of rule.verbs) {
        single.push({
          apiGroups: [group],
          resources: [resource],
          verbs: [verb],
          ...(rule.resourceNames === undefined ? {} : { resourceNames: rule.resourceNames }),
        });
      }
    }
  }
  for (const url of rule.nonResourceURLs ?? []) {
    for (const verb of rule.verbs) single.push({ nonResourceURLs: [url], verbs: [verb] });
  }
  return single;
}

/** The broken-down parts of `wanted` that no rule in `owner` covers (empty: the escalation check passes). */
export function uncoveredRules(owner: readonly PolicyRule[], wanted: readonly PolicyRule[]): PolicyRule[] {
  return wanted
    .flatMap(breakDown)
    .filter((part) => part.nonResourceURLs !== undefined || !owner.some((rule) => ruleCovers(rule, part)));
}

/** Whether the rules grant `verb` on `group/resource` (an authorization check, not a coverage check). */
export function allows(rules: readonly PolicyRule[], group: string, resource: string, verb: string): boolean {
  return rules.some(
    (rule) =>
      (rule.resourceNames ?? []).length === 0 &&
      ((rule.apiGroups ?? []).includes(ALL) || (rule.apiGroups ?? []).includes(group)) &&
      ((rule.resources ?? []).includes(ALL) || (rule.resources ?? []).includes(resource)) &&
      (rule.verbs.includes(ALL) || rule.verbs.includes(verb)),
  );
}

export function hasWildcard(rule: PolicyRule): boolean {
  return [rule.apiGroups, rule.resources, rule.verbs, rule.nonResourceURLs].some((list) =>
    (list ?? []).includes(ALL),
  );
}
