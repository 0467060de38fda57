import {
  istiodAnalysisRules,
  istiodClusterRules,
  sharedIstiodClusterRules,
} from '../../../../src/controllers/revision/istiod-rbac.js';

type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[] };

function gatewayStatusRules(rules: Rule[]): { experimental?: string[]; standard: boolean } {
  const experimental = rules.find(
    (rule) => rule.apiGroups?.length === 1 && rule.apiGroups[0] === 'gateway.networking.x-k8s.io',
  );
  const standard = rules.find(
    (rule) =>
      rule.apiGroups?.[0] === 'gateway.networking.k8s.io' && rule.resources?.includes('gateways/status'),
  );
  return {
    ...(experimental?.resources ? { experimental: experimental.resources } : {}),
    standard: standard?.resources?.includes('listenersets/status') ?? false,
  };
}

describe('istiod cluster rules as Istio`s chart renders them', () => {
  it('let istiod manage webhook configurations, read Istio config and Secrets, and review tokens', () => {
    expect(istiodClusterRules({ version: '1.29.6', analysis: false })).toEqual(
      expect.arrayContaining([
        {
          apiGroups: ['admissionregistration.k8s.io'],
          resources: ['mutatingwebhookconfigurations'],
          verbs: ['get', 'list', 'watch', 'update', 'patch'],
        },
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'watch', 'list'] },
      ]),
    );
  });

  it.each([
    ['1.28.10', ['xbackendtrafficpolicies/status', 'xlistenersets/status'], false],
    ['1.29.6', ['xbackendtrafficpolicies/status', 'xlistenersets/status'], false],
    ['1.30.3', ['xbackendtrafficpolicies/status'], true],
  ])('grant the Gateway API status resources of Istio %s', (version, experimental, listenerSets) => {
    expect(gatewayStatusRules(istiodClusterRules({ version, analysis: false }))).toEqual({
      experimental,
      standard: listenerSets,
    });
  });

  it('add the analysis status and ingress permissions only with analysis on', () => {
    const without = istiodClusterRules({ version: '1.29.6', analysis: false });
    const withAnalysis = istiodClusterRules({ version: '1.29.6', analysis: true });
    expect(without.some((rule) => rule.resources?.includes('virtualservices/status'))).toBe(false);
    expect(withAnalysis).toEqual(expect.arrayContaining(istiodAnalysisRules()));
    expect(withAnalysis).toHaveLength(without.length + istiodAnalysisRules().length);
  });

  it('use the MCS API group istiod is configured with', () => {
    const rules = istiodClusterRules({ version: '1.29.6', analysis: false, mcsGroup: 'mcs.example.com' });
    expect(rules.filter((rule) => rule.apiGroups?.includes('mcs.example.com')).length).toBe(2);
  });
});

describe('the shared meshrev-istiod rules', () => {
  it('grant ListenerSet status in both Gateway API groups, so one role serves every supported version', () => {
    expect(gatewayStatusRules(sharedIstiodClusterRules())).toEqual({
      experimental: ['xbackendtrafficpolicies/status', 'xlistenersets/status'],
      standard: true,
    });
  });

  it('leave the analysis additions to their own role', () => {
    expect(
      sharedIstiodClusterRules().some((rule) => rule.resources?.includes('virtualservices/status')),
    ).toBe(false);
  });
});
