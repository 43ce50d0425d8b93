/*
 * NAME
 *	heraldctl - Herald's tool for operators, approvers and deployers
 * DESCRIPTION
 *	Builds the command table and dispatches: global options (--db,
 *	--help, --version) may appear anywhere, the first words name the
 *	command, the rest belong to its handler. Each handler lives in the
 *	ctl module it belongs to (hc_migrate, hc_audit, ...); adding a
 *	subcommand is adding one row here. heraldctl talks to PostgreSQL
 *	only (libpq); it never links libcurl or libesmtp.
 * EXIT STATUS
 *	0 ok, 1 failure, 2 usage error, 4 database unreachable.
 */
#include <stdio.h>
#include <string.h>

#include "hc_approve.h"
#include "hc_audit.h"
#include "hc_cli.h"
#include "hc_dead.h"
#include "hc_migrate.h"
#include "hc_org.h"
#include "hc_policy.h"
#include "hc_stats.h"

#ifndef HERALD_VERSION
#define HERALD_VERSION "unknown"
#endif

static const hc_command_t commands[] = {
	{"db migrate", hc_migrate_cmd_migrate, "apply pending schema migrations", "",
	 "Applies the migrations built into this heraldctl that the database does not\n"
	 "have yet, in order, each in its own transaction together with its row in\n"
	 "herald.schema_migrations, under an advisory lock so that two deployers cannot\n"
	 "interleave. Prints one line per migration applied, or \"up to date\".\n"
	 "Refuses to do anything (exit 1) if an applied migration's checksum differs\n"
	 "from the one built in, if the database has a migration this binary does not\n"
	 "know, or if a pending migration is older than an applied one.\n"
	 "Run it as the role that should own Herald's tables and functions; it creates\n"
	 "the group roles herald_broker, herald_operator and herald_approver if missing\n"
	 "(so that role needs CREATEROLE, or run it once as a superuser).\n"},
	{"db status", hc_migrate_cmd_status, "show applied and pending migrations", "[--json]",
	 "Lists every migration built in or applied, with its state: applied, pending,\n"
	 "MODIFIED (applied with another checksum) or UNKNOWN (applied, not built in).\n"
	 "Changes nothing. Exit 1 when the history is inconsistent.\n"
	 "  --json  one JSON object: version, up_to_date, pending, migrations, problem\n"},
	{"audit verify", hc_audit_cmd_verify, "check the audit trail's hash chains", "[--json]",
	 "Recomputes, inside the database (herald.audit_verify()), the digest of every\n"
	 "sealed batch of audit events and the hash of every link of the eight chains,\n"
	 "and reports any event or link that was altered, removed or added behind the\n"
	 "seal's back. Exit 0 when the trail is intact, 1 when problems were found.\n"
	 "  --json  one JSON object: intact, events, links, chains, problems\n"},
	{"stats", hc_stats_cmd, "deliveries, queues, outcome rates and live workers", "[--json]",
	 "Shows, from one consistent snapshot of the database: deliveries by state,\n"
	 "channel and class; per channel, how long the oldest queued delivery has been\n"
	 "due without being claimed and how old the oldest held one is; deliveries\n"
	 "delivered, retried and failed, and the failure rate (attempts that did not\n"
	 "deliver, of all attempts) over the last 5 minutes and the last hour (to within\n"
	 "10 s), overall, per channel and per provider; and the workers a broker has\n"
	 "reported in the last 10 seconds. Needs herald_operator (or herald_broker).\n"
	 "  --json  one JSON object: deliveries, by_state, total, queues,\n"
	 "          oldest_queued_age_s, oldest_held_age_s, outcomes {last_5m, last_1h},\n"
	 "          workers\n"},
	{"dead", hc_dead_cmd_list, "list failed deliveries (dead letters)",
	 "[--channel C] [--since T] [--limit N] [--json]",
	 "Lists failed deliveries, the most recent failure first: delivery and message\n"
	 "id, channel, recipient, attempts, when it failed, the last error and the\n"
	 "message's subject. Requeue them with 'heraldctl requeue'.\n"
	 "  --channel C  only email, im or sms\n"
	 "  --since T    only those that failed at or after T: an age such as 30m, 1h,\n"
	 "               2d, 1h30m, or an ISO 8601 time (2024-07-01T12:00:00Z; without an\n"
	 "               offset it is local time)\n"
	 "  --limit N    show at most N (default 50, at most 10000)\n"
	 "  --json       one JSON object: total, shown, deliveries\n"},
	{"requeue", hc_dead_cmd_requeue, "put failed deliveries back in the queue",
	 "ID... | --all-failed --since T [--json]",
	 "Moves failed deliveries back to queued, due now, keeping their attempt count;\n"
	 "their maximum lifetime starts again. IDs may be separate or comma-separated.\n"
	 "By id it is all or nothing: if any ID is not a failed delivery, nothing is\n"
	 "requeued, each such ID is named with its state, and the exit status is 1.\n"
	 "  --all-failed --since T  every delivery that failed at or after T (see\n"
	 "                          'heraldctl help dead' for T)\n"
	 "  --json                  one JSON object: requeued, delivery_ids, refused\n"
	 "Each requeue is an audit event whose actor is the database role heraldctl\n"
	 "logged in as (needs herald_operator).\n"},
	{"org import", hc_org_cmd_import, "load departments and staff from a CSV or YAML file",
	 "FILE [--format csv|yaml] [--json]",
	 "Reads the organisation (departments and their heads, staff with their roles,\n"
	 "database login role and where to notify them), checks all of it first (every\n"
	 "mistake is reported as FILE:LINE) and hands it to herald.org_import() in one\n"
	 "transaction: departments and staff are added or updated, never duplicated, and\n"
	 "staff missing from the file are deactivated (not deleted). Importing the same\n"
	 "file again changes nothing. Needs herald_operator.\n"
	 "  --format F  csv or yaml; by default from the extension (.csv, .yaml, .yml)\n"
	 "  --json      one JSON object: file, departments, staff, senior\n"
	 "CSV: a header row naming the columns (any order; only kind is required)\n"
	 "  kind,name,address,department,roles,db_role,notify_channel,notify_address,head\n"
	 "then one row per department (kind department: name, head) or person (kind\n"
	 "staff: name, address, department, roles, db_role, notify_channel email|im,\n"
	 "notify_address). roles: employee, dept_head, senior, supervisor, operator,\n"
	 "separated by ';' (default employee). Lines starting with # are comments.\n"
	 "YAML: departments: [{name, head}]\n"
	 "      staff: [{address, name, department, roles: [..], db_role,\n"
	 "               notify: {channel, address}}]\n"
	 "See deploy/org.example.csv and deploy/org.example.yaml.\n"},
	{"org show", hc_org_cmd_show, "departments, heads, staff and senior leadership", "[--json]",
	 "Lists the departments with their heads, the active staff with their roles,\n"
	 "database role and notification channel, and the senior leadership.\n"
	 "  --json  one JSON object: departments, staff (inactive too), senior\n"},
	{"held", hc_approve_cmd_held, "messages waiting for my approval",
	 "[--department D] [--class important|bulk] [--older-than AGE] [--json]",
	 "Lists the approval requests you (the database role you log in as) can decide\n"
	 "now, soonest due first: message id, class, sender, department, subject, level\n"
	 "and kind of approval, and when it is due (\"in 5h\", \"overdue 2m\": overdue\n"
	 "requests expire and are never sent).\n"
	 "  --department D   only messages from department D\n"
	 "  --class C        only important or only bulk approvals\n"
	 "  --older-than AGE only requests waiting longer than AGE (30m, 2h, 1d, 1h30m)\n"
	 "  --json           one JSON object: count, held\n"},
	{"show", hc_approve_cmd_show, "one message: content, attachments, approval chain",
	 "ID [--key-file [KEYID:]PATH] [--json]",
	 "Prints message ID as its approver sees it: sender, recipients, subject and\n"
	 "body, attachments (name, type, size), policy findings when there are any, the\n"
	 "bulk application, the approval chain (level, who decided, when, comment, due\n"
	 "time) and the deliveries by state. You may see messages you can decide or\n"
	 "have decided, and your own; supervisors and operators see all. A confidential\n"
	 "body is shown only to its sender, approvers and supervisors, and only opened\n"
	 "with the key it was sealed with (POLICY K2).\n"
	 "  --key-file K  open a confidential body sealed at rest (also $HERALD_KEY_FILE,\n"
	 "                $HERALD_KEYS \"id:path,...\"); the file must be mode 0600\n"
	 "  --json        herald.message_detail()'s document, sealed parts opened when\n"
	 "                the key allows\n"},
	{"approve", hc_approve_cmd_approve, "approve a held message", "ID [--comment TEXT] [--json]",
	 "Approves every pending request of message ID at the lowest level you are\n"
	 "entitled to decide (head of the sender's department for level 1, senior\n"
	 "leadership for level 2). When it was the last one the message is released and\n"
	 "its deliveries are queued at once. The database refuses (exit 1, its reason\n"
	 "printed as it is) when you are not the approver, approve your own message, the\n"
	 "lower level is still pending or the request has expired.\n"
	 "  --comment TEXT  recorded with your approval\n"
	 "  --json          one JSON object: ok, message_id, approved, released, summary\n"},
	{"reject", hc_approve_cmd_reject, "reject a held message", "ID --reason TEXT [--json]",
	 "Rejects message ID: its pending requests are rejected, its deliveries are\n"
	 "never sent and the sender is told the reason. Same entitlement as approve.\n"
	 "  --reason TEXT  required: why (the sender receives it)\n"
	 "  --json         one JSON object: ok, message_id, rejected, summary\n"},
	{"group add", hc_policy_cmd_group_add, "register an IM work group (or update it)",
	 "NAME --purpose P --owner ADDR --provider P --endpoint E --departments D1,D2|* [--json]",
	 "Registers IM group NAME as a work group (POLICY I1, I3): IM messages go only to\n"
	 "registered, active groups, and only from the departments a group admits;\n"
	 "anything else is refused at intake and recorded as a violation. Adding a group\n"
	 "again updates it (and reactivates it when it was removed). Every change is an\n"
	 "audit event. Needs herald_operator, or staff with role operator.\n"
	 "  NAME             the group as applications address it: 1 to 64 of\n"
	 "                   A-Z a-z 0-9 . _ -, case-sensitive\n"
	 "  --purpose P      what the group is for (required)\n"
	 "  --owner ADDR     the staff member who keeps it clean\n"
	 "  --provider P     slack, mattermost, teams, wecom, dingtalk, feishu or webhook\n"
	 "  --endpoint E     the NAME of the worker's endpoint entry in herald-worker.conf,\n"
	 "                   which holds the webhook URL and secret; never a URL\n"
	 "  --departments D  the departments that may post, separated by commas, or *\n"
	 "                   for every department\n"
	 "  --json           one JSON object: ok, group, result (added, updated, unchanged)\n"},
	{"group list", hc_policy_cmd_group_list, "the registered IM work groups", "[--json]",
	 "Lists every registered group, active ones first: name, purpose, owner,\n"
	 "provider, endpoint name, the departments that may post, and whether it was\n"
	 "removed. Needs herald_operator, or staff with role operator.\n"
	 "  --json  one JSON object: count, groups\n"},
	{"group remove", hc_policy_cmd_group_remove, "deactivate an IM work group", "NAME [--json]",
	 "Removes group NAME from service: messages to it are refused from now on. The\n"
	 "registration and its history are kept; 'group add' brings it back.\n"
	 "  --json  one JSON object: ok, group, result (removed, unchanged)\n"},
	{"consent add", hc_policy_cmd_consent_add, "record a number's consent to marketing SMS",
	 "NUMBER --source S [--json]",
	 "Records that NUMBER (E.164: +8613800138000) consented to marketing SMS, now,\n"
	 "from source S (the web form, the paper form, the call): marketing SMS to it\n"
	 "are accepted (POLICY S1). Overrides an earlier opt-out. An audit event; needs\n"
	 "herald_operator, or staff with role operator.\n"
	 "  --source S  required: where the consent came from\n"
	 "  --json      one JSON object: ok, number, result (granted, unchanged)\n"},
	{"consent revoke", hc_policy_cmd_consent_revoke, "record a number's opt-out",
	 "NUMBER --source S [--json]",
	 "Records that NUMBER opted out of marketing SMS, now: marketing SMS to it are\n"
	 "refused from now on, and an imported consent older than the opt-out never\n"
	 "re-grants it. Recorded even when no consent was on file.\n"
	 "  --source S  required: where the opt-out came from (\"replied STOP\")\n"
	 "  --json      one JSON object: ok, number, result (revoked, unchanged)\n"},
	{"consent import", hc_policy_cmd_consent_import, "import consents from a CSV file",
	 "FILE [--json]",
	 "Reads FILE, one consent per line: number,source[,granted_at] (granted_at ISO\n"
	 "8601; empty = now), with an optional header line naming those columns (then\n"
	 "in any order); blank lines and lines starting with # are ignored. Every line\n"
	 "is checked first (mistakes are reported as FILE:LINE) and the whole file is\n"
	 "one transaction. Idempotent: numbers already granted are left alone, and a\n"
	 "number that opted out is re-granted only by a consent dated after the opt-out.\n"
	 "  --json  one JSON object: file, lines, granted, unchanged, kept_revoked\n"},
	{"consent show", hc_policy_cmd_consent_show, "a number's consent and its history",
	 "NUMBER [--json]",
	 "Shows whether NUMBER may receive marketing SMS, since when and from which\n"
	 "source, and every grant and opt-out recorded for it, with who recorded it.\n"
	 "  --json  one JSON object: number, state (granted, revoked, none), granted_at,\n"
	 "          granted_source, revoked_at, revoked_source, updated_at, history\n"},
	{"violations", hc_policy_cmd_violations, "policy violations, listed or counted",
	 "[--since T] [--until T] [--sender A] [--department D] [--by sender|department] "
	 "[--limit N] [--json]",
	 "Lists the policy violations (POLICY V2: every rejection and warning by the\n"
	 "policy), newest first: when, sender, department, clause, severity, action,\n"
	 "rule, message (none when the submission was refused), field and reason. With\n"
	 "--by, counts them per sender or per department instead, by severity. Needs\n"
	 "herald_operator, or staff with role supervisor or operator.\n"
	 "  --since T       only violations at or after T (see 'heraldctl help dead')\n"
	 "  --until T       only violations before T\n"
	 "  --sender A      only this sender's\n"
	 "  --department D  only this department's\n"
	 "  --by B          sender or department: one line each, with totals\n"
	 "  --limit N       list at most N (default 100)\n"
	 "  --json          one JSON object: total, shown, violations; with --by: by, rows\n"},
	{"help", NULL, "show help for a command", "[COMMAND]",
	 "Without COMMAND, lists all commands.\n"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char *prog = "heraldctl";

/* "heraldctl help [COMMAND...]" */
static int help(FILE *out, FILE *err, int argc, char **argv)
{
	if (argc == 0) {
		hc_cli_print_usage(out, prog, commands, NCOMMANDS);
		return HC_EXIT_OK;
	}
	int nwords = 0;
	const hc_command_t *cmd = hc_cli_find(commands, NCOMMANDS, argc, argv, &nwords);
	if (cmd != NULL && nwords == argc) {
		hc_cli_print_command_help(out, prog, cmd);
		return HC_EXIT_OK;
	}
	const hc_command_t *group[NCOMMANDS];
	size_t n = hc_cli_find_group(commands, NCOMMANDS, argc, argv, group, NCOMMANDS);
	if (n > 0) {
		for (size_t i = 0; i < n && i < NCOMMANDS; i++)
			fprintf(out, "  %-16s %s\n", group[i]->name, group[i]->summary);
		return HC_EXIT_OK;
	}
	fprintf(err, "%s: no such command '%s'; see '%s --help'\n", prog, argv[0], prog);
	return HC_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	char *rest[HC_MAX_ARGS];
	size_t nrest = 0;
	hc_globals_t g;
	char err[256];
	if (hc_cli_split_globals(argc, argv, &g, rest, HC_MAX_ARGS, &nrest, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return HC_EXIT_USAGE;
	}
	if (g.version) {
		printf("heraldctl %s\n", HERALD_VERSION);
		return HC_EXIT_OK;
	}
	if (nrest == 0) {
		hc_cli_print_usage(g.help ? stdout : stderr, prog, commands, NCOMMANDS);
		return g.help ? HC_EXIT_OK : HC_EXIT_USAGE;
	}

	int nwords = 0;
	const hc_command_t *cmd = hc_cli_find(commands, NCOMMANDS, (int)nrest, rest, &nwords);
	if (cmd == NULL) {
		const hc_command_t *group[NCOMMANDS];
		size_t n = hc_cli_find_group(commands, NCOMMANDS, (int)nrest, rest, group, NCOMMANDS);
		if (n > 0) {
			FILE *out = g.help ? stdout : stderr;
			if (!g.help)
				fprintf(stderr, "%s: '%s' needs a subcommand:\n", prog, rest[0]);
			for (size_t i = 0; i < n && i < NCOMMANDS; i++)
				fprintf(out, "  %-16s %s\n", group[i]->name, group[i]->summary);
			return g.help ? HC_EXIT_OK : HC_EXIT_USAGE;
		}
		fprintf(stderr, "%s: unknown command '%s'; see '%s --help'\n", prog, rest[0], prog);
		return HC_EXIT_USAGE;
	}
	if (cmd->handler == NULL)
		return help(stdout, stderr, (int)nrest - nwords, rest + nwords);
	if (g.help) {
		hc_cli_print_command_help(stdout, prog, cmd);
		return HC_EXIT_OK;
	}

	hc_ctx_t ctx = {.conninfo = g.conninfo, .out = stdout, .err = stderr};
	int rc = cmd->handler(&ctx, (int)nrest - nwords, rest + nwords);
	if (fflush(stdout) != 0) {
		perror("heraldctl: stdout");
		return HC_EXIT_FAIL;
	}
	return rc;
}
