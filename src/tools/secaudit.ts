/**
 * secaudit — step-by-step security audit (OWASP Top 10, compliance, infrastructure, dependencies)
 * with an expert security assessment at the final step (SPEC §4.2).
 */
import { z } from "zod";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra } from "./workflow-spec.js";

const AUDIT_FOCUSES = ["owasp", "compliance", "infrastructure", "dependencies", "comprehensive"] as const;
const THREAT_LEVELS = ["low", "medium", "high", "critical"] as const;
type AuditFocus = (typeof AUDIT_FOCUSES)[number];

export const SECAUDIT_PROMPT = `You are an application security engineer performing a security audit. Another AI agent has examined the code step by
step; its findings and the relevant files (with line numbers) follow. Assess, in proportion to the stated threat level:
authentication and session handling, authorisation (IDOR, privilege escalation), input validation and injection (SQL,
command, path traversal, SSRF, XSS, deserialisation), secrets and cryptography, data protection and logging of sensitive
data, error handling that leaks information, dependency and supply-chain risk, and configuration/infrastructure exposure.
Map findings to OWASP Top 10 (2021) categories and CWE ids where they apply; check the named compliance requirements.
Verify the agent's findings against the code: confirm, correct or reject each; add what it missed. Rate severity by real
exploitability and impact, not by pattern alone. Never invent vulnerabilities; say what evidence is missing instead.
JSON response: {"status":"security_analysis_complete","summary":"...","risk_level":"critical|high|medium|low",
"findings":[{"id":"sec-001","severity":"critical|high|medium|low","category":"OWASP A03:2021 Injection","cwe":"CWE-89",
"file":"...","line":N,"description":"...","exploit_scenario":"...","impact":"...","remediation":"..."}],
"compliance":[{"requirement":"...","status":"compliant|gap|not_assessed","evidence":"..."}],
"remediation_roadmap":[{"priority":1,"action":"...","effort":"low|medium|high"}],"positives":["..."]}`;

/** The audit phase of each step, in the order a security review usually goes (step 1 = scope). */
const PHASES = [
  [
    "Map the attack surface: entry points (HTTP routes, CLI, queues, files), trust boundaries and data flows",
    "Identify the assets (credentials, personal data, money) and who may touch them",
    "Note the technology stack, frameworks and their security features in use",
  ],
  [
    "Review authentication and session handling: password/token storage, expiry, rotation, MFA",
    "Review authorisation on every entry point: object-level checks (IDOR), role checks, default deny",
  ],
  [
    "Trace untrusted input to sinks: SQL/NoSQL queries, shell commands, file paths, templates, URLs fetched (SSRF)",
    "Check output encoding and deserialisation of untrusted data",
  ],
  [
    "Check secrets handling (hard-coded keys, logs), cryptography (algorithms, randomness, TLS verification)",
    "Check error handling and logging for leaked internals or personal data",
  ],
  [
    "Review dependencies (known CVEs, unpinned or abandoned packages) and build/CI supply chain",
    "Review configuration and infrastructure: debug modes, CORS, headers, container and cloud permissions",
  ],
];

const FOCUS_ACTIONS: Record<AuditFocus, string> = {
  owasp: "Walk the OWASP Top 10 (2021) categories A01–A10 against this code and note which apply",
  compliance: "For each compliance requirement, collect evidence in the code (or its absence)",
  infrastructure:
    "Inspect deployment configuration: Dockerfiles, IaC, secrets in env files, network exposure",
  dependencies:
    "List direct and transitive dependencies with versions; flag known-vulnerable or unmaintained ones",
  comprehensive: "Cover every phase; do not skip one because the previous looked clean",
};

export const secauditTool = createWorkflowTool({
  name: "secaudit",
  title: "Security audit",
  pauseNoun: "security_audit",
  description:
    "Step-by-step security audit (OWASP, compliance, infrastructure, dependencies): you examine the code phase by phase; an expert model assesses vulnerabilities at the final step.",
  extraShape: {
    audit_focus: z.enum(AUDIT_FOCUSES).optional().describe("Default comprehensive"),
    threat_level: z.enum(THREAT_LEVELS).optional().describe("Exposure of the system (default medium)"),
    security_scope: z.string().optional().describe("System context: web app, API, CLI, data handled…"),
    compliance_requirements: z.array(z.string()).optional().describe("e.g. SOC2, PCI DSS, HIPAA, GDPR"),
  },
  systemPrompt: SECAUDIT_PROMPT,
  requiredActions(step, _total, args) {
    const focus = (args.audit_focus as AuditFocus | undefined) ?? "comprehensive";
    const phase = PHASES[Math.min(step, PHASES.length) - 1] ?? [];
    const extra: string[] = [];
    if (step === 1 || focus !== "comprehensive") extra.push(FOCUS_ACTIONS[focus]);
    if (args.threat_level === "high" || args.threat_level === "critical")
      extra.push("At this threat level, assume a motivated attacker: check abuse of every trust boundary");
    if (step > PHASES.length)
      extra.push("Re-verify the highest-severity findings in the code and rate exploitability and impact");
    return [...phase, ...extra, "Record each vulnerability in issues_found with severity and file:line"];
  },
  prepareStep(args, _context, previous) {
    if (args.next_step_required) return {};
    const value = (name: string) => latestExtra(name, args, previous);
    const compliance = value("compliance_requirements") as string[] | undefined;
    return {
      promptLines: [
        "",
        "=== AUDIT PARAMETERS ===",
        `Audit focus: ${String(value("audit_focus") ?? "comprehensive")}`,
        `Threat level: ${String(value("threat_level") ?? "medium")}`,
        ...(value("security_scope") ? [`Security scope: ${String(value("security_scope"))}`] : []),
        ...(compliance?.length ? [`Compliance requirements: ${compliance.join(", ")}`] : []),
      ],
    };
  },
});
