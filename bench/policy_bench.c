/*
 * NAME
 *	herald-policy-bench - how fast the sending policy evaluates messages
 * SYNOPSIS
 *	herald-policy-bench [--config FILE | --write-config DIR] [--messages N]
 *	                    [--seconds S] [--planted-pct P] [--seed N]
 *	                    [--terms PROHIBITED,SENSITIVE,CIVILITY] [--cpu N]
 *	                    [--write-texts FILE] [--texts N]
 * DESCRIPTION
 *	Loads a policy with hd_policy_load, exactly as heraldd does, and
 *	evaluates N distinct messages of mixed Chinese and English text with
 *	hd_policy_evaluate, round robin, for S seconds on ONE thread pinned
 *	to one CPU (sched_setaffinity). Then it prints one line:
 *
 *	  policy evals_per_s=E ns_per_eval=T mb_per_s=M wall_evals_per_s=W
 *	         terms=K rules=R load_ms=L messages=N ... findings_pct=F
 *
 *	evals_per_s counts evaluations per CPU second of the evaluating
 *	thread (CLOCK_THREAD_CPUTIME_ID), i.e. per core; wall_evals_per_s
 *	per second of wall time (lower when something else took the CPU).
 *	mb_per_s is the subject and body bytes evaluated per CPU second.
 *
 *	The policy. Without --config it writes one (into --write-config DIR,
 *	kept, or a temporary directory, removed): heraldd's built-in rules
 *	with the lists prohibited, sensitive and civility read from files
 *	(files = ["prohibited.txt"], relative to the configuration file, as
 *	deployed) holding --terms terms (default 5000,3000,2000: 10,000),
 *	half Chinese words of 2-4 common ideographs, half English words and
 *	phrases, drawn from a fixed seed (--seed), plus the built-in terms of
 *	those lists. A generated term that occurs in the text the messages
 *	are made of is dropped, so clean messages are clean by construction.
 *	With --config FILE any heraldd configuration is evaluated as given.
 *
 *	The messages: 70% email (subject and ~1 KB body), 20% IM (~1 KB
 *	body), 10% SMS (a body of at most 3 SMS parts, ~200 characters:
 *	the sms-length rule rejects longer ones), made of business sentences
 *	in Chinese and English with varying numbers. --planted-pct (default
 *	5) of them get one term of a list that a reject or hold rule of the
 *	policy checks in that channel's body (taken from the loaded policy
 *	itself, hd_policy_print), so the matching and the reporting paths
 *	both run.
 *
 *	Correctness (exit 1 when violated), checked on every message before
 *	the timed loop: a message with a planted term has that rule's finding
 *	(and a reject for a reject rule, "important" for a hold rule); a clean
 *	message is neither rejected nor held. Every evaluation in the timed
 *	loop must return 0.
 *
 *	--write-texts FILE writes --texts (default 1000) clean email texts,
 *	one "SUBJECT<TAB>BODY" line each, for herald-bench --text-file
 *	(bench/run.sh policy submits them to heraldd); each is evaluated
 *	first and must be neither rejected nor held.
 * LIMITS
 *	messages <= 100000, seconds <= 3600, terms <= 200000 per list,
 *	texts <= 100000.
 * EXIT STATUS
 *	0 done and correct, 1 a correctness check failed, 2 usage or setup
 *	error.
 */
#define _GNU_SOURCE /* sched_setaffinity, sched_getcpu, memmem */
#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_num.h"
#include "hd_policy.h"
#include "hd_sms_segments.h"

#define PB_MAX_MESSAGES    100000L
#define PB_MAX_SECONDS     3600L
#define PB_MAX_LIST_TERMS  200000L
#define PB_MAX_TEXTS       100000L
#define PB_MAX_PIECES      64
#define PB_BODY_BYTES      950u    /* email: + a ~60-byte subject = ~1 KB of text */
#define PB_IM_BYTES        1000u
#define PB_SMS_MAX_PARTS   3u      /* the default sms-length limit */
#define PB_CHECK_EVERY     128u    /* evaluations between clock reads */
#define PB_NS_PER_S        1000000000LL
#define PB_MAX_FAILURES    10      /* correctness failures printed */
#define PB_MAX_PLANT_RULES 64      /* terms rules a term can be planted for */

/* ---- text material ---------------------------------------------------------
 * Business sentences; '#' becomes a number. Every sentence ends with
 * punctuation, so no term (letters or ideographs only) can span two of
 * them. None contains a built-in list term.
 */
static const char *const pb_zh_sentences[] = {
	"各位同事，第#季度的项目进度报告已经整理完毕，请在周五之前查看并提出意见。",
	"下周二上午十点在#号会议室召开产品评审会，请相关负责人准时参加。",
	"客户反馈的问题已经定位，修复版本预计明天发布到预发环境。",
	"请大家按照新的流程提交报销单据，财务部会在三个工作日内处理。",
	"本次系统升级将在周六晚上进行，期间服务可能会短暂中断。",
	"感谢各位在上个月的辛苦付出，我们提前完成了年度目标的#%。",
	"培训资料已上传到共享目录，请新同事在入职第一周内学习完成。",
	"如对排期有疑问，请直接联系项目经理或在群里留言。",
	"供应商的报价单已经收到，采购部正在比较各家的价格和交付周期。",
	"请各部门在月底前更新人员信息，以便人力资源部统计。",
	"办公室空调维修安排在本周四下午，请提前保存好工作文件。",
	"新版本的用户手册已经完成校对，欢迎大家提出修改建议。",
	"市场部计划在下个月举办线上发布会，具体方案稍后发送。",
	"服务器监控显示昨晚流量达到峰值，运维团队已经扩容。",
	"请确认您的差旅行程，酒店和机票将由行政部统一预订。",
	"会议纪要见下文，主要讨论了第#阶段的开发计划和验收安排。",
	"数据分析报告显示用户留存率比上季度提高了#个百分点。",
	"代码评审发现了几个小问题，已经在合并请求中标注。",
	"年度体检预约系统已经开放，请在本月#日前完成登记。",
	"仓库盘点工作将于下周一开始，预计持续两天。",
	"新办公区的门禁卡已经制作完成，可以到前台领取。",
	"请在邮件中注明项目编号，方便我们快速归档。",
	"质量团队完成了回归验证，没有发现新的缺陷。",
	"客户拜访安排在周三下午，请销售同事准备演示材料。",
	"文档中心的访问权限已经调整，如有问题请联系信息部。",
	"第#版设计稿已经更新，主要修改了首页布局和配色。",
};

static const char *const pb_en_sentences[] = {
	"The weekly status report for project # is attached below; please review it before Friday.",
	"Please join the design review on Tuesday at 10:00 in meeting room #.",
	"The customer issue was traced to a configuration change and a fix is ready for staging.",
	"Travel requests for next month should be submitted through the usual form.",
	"The maintenance window starts on Saturday at 22:00 and should take about two hours.",
	"Thanks to everyone who helped close # tickets during the last sprint.",
	"Onboarding documents for the new hires are in the shared folder.",
	"If the schedule does not work for you, reply with a better time slot.",
	"Vendor quotes arrived this morning and procurement is comparing delivery times.",
	"Please update your contact details in the directory by the end of the month.",
	"The office air conditioning will be serviced on Thursday afternoon.",
	"Release notes for version #.0 are ready for a final proofread.",
	"Marketing plans an online launch event next month; details will follow.",
	"Monitoring showed a traffic peak last night and operations added capacity.",
	"Minutes of the meeting are below, covering phase # of the rollout.",
	"User retention improved by # points compared with last quarter.",
	"Code review found a few small issues, noted in the merge request.",
	"Annual health check appointments can be booked until day # of this month.",
	"Warehouse inventory counting begins next Monday and lasts two days.",
	"New access badges can be collected at the front desk.",
	"Please mention the project number in the subject so we can file it quickly.",
	"The regression suite passed with no new defects.",
	"The client visit is on Wednesday afternoon; sales should prepare a short demo.",
	"Access rights on the document portal were adjusted; contact IT with questions.",
	"Draft # of the design now has a new home page layout and colours.",
};

static const char *const pb_subjects[] = {
	"第#季度项目进度 / Project # status update",
	"产品评审会安排 / Design review on Tuesday, room #",
	"系统升级通知 / Maintenance window this Saturday",
	"报销流程更新 / New expense process, step #",
	"会议纪要：第#阶段 / Minutes: phase # of the rollout",
	"用户留存分析 / Retention analysis for week #",
	"新版本用户手册 / User manual version #.0",
	"客户拜访准备 / Client visit on Wednesday",
	"盘点安排 / Inventory counting from Monday",
	"门禁卡领取 / Access badge number #",
};

/* Common ideographs the Chinese terms are drawn from. */
static const char pb_ideographs[] =
	"的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生"
	"自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与"
	"好看学进种将还分此心前面又定见只主没公从知使全向两长情已最本现新动意把力理物次高"
	"正因实表回位机员话开手间问比门通加各相更立部度产点内明等合工山外做感西品重电路政"
	"活战南给平北化应少九八六信世真记住直特名月打入题放再白步接交资利气代务须确联必克"
	"义科属造目张条决形色求众思文报场且保受常何制由象体百每取共系改界结计达京议干民社"
	"运该治被包府服质流万安院解认展论术半况专单先走口命清海强至元今集料约听近亲火任声"
	"花导切件团金钱财货价商市场买卖交易账户密码转账奖励免费优惠返现赌彩票博投资理财贷"
	"款信用债务担保利润秘密私人裁员诉讼泄露内幕股票枪药品毒黑客病毒钓鱼发票退款礼品卡"
	"奖中验证登录银行离岸税逃贿回扣诈骗假冒仿名牌手表外汇杠杆";

/*
 * Words the English terms are drawn from: a term is one flagged word,
 * or a phrase of 2-3 words with at least one flagged word, so that
 * lists look like lists and common words still start partial matches.
 */
static const char *const pb_en_flagged[] = {
	"cash", "bonus", "winner", "casino", "lottery", "crypto", "bitcoin", "password",
	"pills", "loan", "debt", "guaranteed", "payroll", "layoff", "lawsuit", "leak", "insider",
	"weapon", "drug", "gamble", "betting", "adult", "hack", "exploit", "malware", "phishing",
	"refund", "prize", "wire", "offshore", "evasion", "bribe", "kickback", "fraud", "scam",
	"fake", "replica", "forex", "leverage", "jackpot", "poker", "escort", "pharmacy",
	"steroid", "smuggle", "launder", "ponzi", "pyramid", "explosive", "firearm", "ammo",
	"narcotics", "ransomware", "keylogger", "spyware", "stolen", "forged", "rigging",
	"cashback", "rebate", "voucher", "coupon", "loophole", "bypass", "crack", "leaked", "dump",
	"bankrupt", "overdue", "default", "penalty", "arrears", "lawyer", "subpoena", "audit",
	"scandal", "rumour", "resign", "fired", "dismissal", "severance", "bonuses", "shares",
	"options", "valuation", "ipo", "takeover", "buyout", "dividend", "earnings", "forecast",
};
static const char *const pb_en_common[] = {
	"free", "urgent", "offer", "discount", "credit", "profit", "investment", "secret",
	"private", "trading", "stock", "tip", "dating", "invoice", "gift", "card", "claim",
	"verify", "login", "bank", "tax", "cheap", "luxury", "watch", "margin", "slot", "shell",
	"scheme", "identity", "passport", "visa", "diploma", "degree", "certificate", "votes",
	"account", "report", "review", "project", "meeting", "budget", "customer", "team",
	"plan", "data", "price", "deal", "order", "quick", "easy", "money", "instant", "limited",
	"exclusive", "special", "today", "now", "online", "click", "link", "here", "unlock",
	"access", "premium", "vip", "winning", "reward", "earn", "rich", "million", "billion",
	"dollar", "yuan", "database", "client", "sales", "staff", "office", "internal", "final",
	"plans", "numbers", "list", "figures", "details", "news", "file", "files", "sheet",
};

/* The built-in terms of the lists the bench replaces (hd_policy.c's defaults). */
static const char *const pb_builtin_prohibited[] = {
	"违禁品", "赌博网站", "假发票", "fake invoice", "counterfeit", "money laundering", "洗钱",
};
static const char *const pb_builtin_sensitive[] = {
	"机密", "绝密", "confidential", "salary", "薪酬",
};
static const char *const pb_builtin_civility[] = {
	"idiot", "stupid", "moron", "shut up", "傻逼", "白痴", "蠢货", "滚蛋", "他妈的",
};

#define PB_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- small helpers ------------------------------------------------------ */

typedef struct pb_rng {
	uint64_t s;
} pb_rng_t;

/* splitmix64: deterministic for a seed, good enough for test data. */
static uint64_t pb_next(pb_rng_t *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t pb_below(pb_rng_t *r, size_t n)
{
	return (size_t)(pb_next(r) % (uint64_t)n);
}

static int64_t pb_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * PB_NS_PER_S + ts.tv_nsec;
}

/* A growable NUL-terminated string. */
typedef struct pb_str {
	char *data;
	size_t len;
	size_t cap;
} pb_str_t;

static void pb_str_add(pb_str_t *s, const char *text, size_t len)
{
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		while (cap < s->len + len + 1)
			cap *= 2;
		s->data = hd_realloc(s->data, cap);
		s->cap = cap;
	}
	memcpy(s->data + s->len, text, len);
	s->len += len;
	s->data[s->len] = '\0';
}

static void pb_str_adds(pb_str_t *s, const char *text)
{
	pb_str_add(s, text, strlen(text));
}

/* A template with every '#' replaced by a number 1..99. */
static void pb_str_add_template(pb_str_t *s, pb_rng_t *r, const char *tpl)
{
	for (const char *p = tpl; *p; p++) {
		if (*p == '#') {
			char num[8];
			int n = snprintf(num, sizeof(num), "%zu", 1 + pb_below(r, 99));
			pb_str_add(s, num, (size_t)n);
		} else {
			pb_str_add(s, p, 1);
		}
	}
}

/* ---- term lists ------------------------------------------------------------ */

/* A set of strings (open addressing), to keep terms distinct. */
typedef struct pb_set {
	char **slots;
	size_t cap;    /* power of two */
	size_t count;
} pb_set_t;

static uint64_t pb_hash(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}

/* Adds a copy of s; false when it was there already. */
static bool pb_set_add(pb_set_t *set, const char *s)
{
	if ((set->count + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 1024;
		char **slots = hd_calloc(cap, sizeof(*slots));
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slots[i])
				continue;
			size_t k = (size_t)pb_hash(set->slots[i]) & (cap - 1);
			while (slots[k])
				k = (k + 1) & (cap - 1);
			slots[k] = set->slots[i];
		}
		free(set->slots);
		set->slots = slots;
		set->cap = cap;
	}
	size_t k = (size_t)pb_hash(s) & (set->cap - 1);
	while (set->slots[k]) {
		if (strcmp(set->slots[k], s) == 0)
			return false;
		k = (k + 1) & (set->cap - 1);
	}
	set->slots[k] = hd_strdup(s);
	set->count++;
	return true;
}

static void pb_set_release(pb_set_t *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/*
 * Every sentence and subject template in lower case, one per line: a
 * term found in it (as a plain substring, stricter than the policy's
 * whole-word matching) could match a clean message, so it is dropped.
 */
static char *pb_material(void)
{
	pb_str_t s = {0};
	const char *const *groups[] = {pb_zh_sentences, pb_en_sentences, pb_subjects};
	size_t counts[] = {PB_COUNT(pb_zh_sentences), PB_COUNT(pb_en_sentences),
			   PB_COUNT(pb_subjects)};
	for (size_t g = 0; g < 3; g++)
		for (size_t i = 0; i < counts[g]; i++) {
			pb_str_adds(&s, groups[g][i]);
			pb_str_add(&s, "\n", 1);
		}
	for (size_t i = 0; i < s.len; i++)
		if (s.data[i] >= 'A' && s.data[i] <= 'Z')
			s.data[i] = (char)(s.data[i] - 'A' + 'a');
	return s.data;
}

/* Ideographs in pb_ideographs (3 bytes of UTF-8 each). */
static size_t pb_ideograph_count(void)
{
	return (sizeof(pb_ideographs) - 1) / 3;
}

static void pb_chinese_term(pb_rng_t *r, pb_str_t *out)
{
	size_t roll = pb_below(r, 10);
	size_t chars = roll < 5 ? 2 : roll < 8 ? 3 : 4;
	out->len = 0;
	for (size_t i = 0; i < chars; i++)
		pb_str_add(out, pb_ideographs + 3 * pb_below(r, pb_ideograph_count()), 3);
}

static void pb_english_term(pb_rng_t *r, pb_str_t *out)
{
	size_t roll = pb_below(r, 10);
	size_t words = roll < 2 ? 1 : roll < 8 ? 2 : 3;
	size_t flagged = pb_below(r, words);  /* which word is the flagged one */
	out->len = 0;
	for (size_t i = 0; i < words; i++) {
		if (i)
			pb_str_add(out, " ", 1);
		if (i == flagged)
			pb_str_adds(out, pb_en_flagged[pb_below(r, PB_COUNT(pb_en_flagged))]);
		else
			pb_str_adds(out, pb_en_common[pb_below(r, PB_COUNT(pb_en_common))]);
	}
}

/*
 * Write one list file: the built-in terms, then generated ones up to
 * total, half Chinese and half English, none already in seen and none
 * occurring in the message material.
 */
static int pb_write_list(const char *dir, const char *name, const char *const *builtin,
			 size_t builtin_count, size_t total, pb_rng_t *r, pb_set_t *seen,
			 const char *material, uint64_t seed)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# %s: %zu terms written by herald-policy-bench --seed %llu\n"
		"# (the built-in terms, then half Chinese, half English; one term per line)\n",
		name, total, (unsigned long long)seed);
	size_t written = 0;
	for (size_t i = 0; i < builtin_count && written < total; i++) {
		if (strstr(material, builtin[i]))
			hd_panic("herald-policy-bench: built-in term \"%s\" is in the message text",
				 builtin[i]);
		if (pb_set_add(seen, builtin[i])) {
			fprintf(f, "%s\n", builtin[i]);
			written++;
		}
	}
	size_t want_zh = written + (total - written) / 2;
	pb_str_t term = {0};
	size_t attempts = 0;
	while (written < total) {
		if (++attempts > total * 100) {
			fclose(f);
			free(term.data);
			fprintf(stderr, "herald-policy-bench: cannot draw %zu distinct terms for %s\n",
				total, name);
			return -1;
		}
		if (written < want_zh)
			pb_chinese_term(r, &term);
		else
			pb_english_term(r, &term);
		if (strstr(material, term.data) || !pb_set_add(seen, term.data))
			continue;
		fprintf(f, "%s\n", term.data);
		written++;
	}
	free(term.data);
	if (fclose(f) != 0) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Write DIR/policy.conf and its three list files; the path in conf_path. */
static int pb_write_config(const char *dir, const size_t terms[3], uint64_t seed,
			   char *conf_path, size_t conf_len)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "herald-policy-bench: mkdir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	char *material = pb_material();
	pb_rng_t r = {seed};
	pb_set_t seen = {0};
	int rc = 0;
	if (pb_write_list(dir, "prohibited", pb_builtin_prohibited, PB_COUNT(pb_builtin_prohibited),
			  terms[0], &r, &seen, material, seed) != 0 ||
	    pb_write_list(dir, "sensitive", pb_builtin_sensitive, PB_COUNT(pb_builtin_sensitive),
			  terms[1], &r, &seen, material, seed) != 0 ||
	    pb_write_list(dir, "civility", pb_builtin_civility, PB_COUNT(pb_builtin_civility),
			  terms[2], &r, &seen, material, seed) != 0)
		rc = -1;
	pb_set_release(&seen);
	free(material);
	if (rc != 0)
		return rc;
	snprintf(conf_path, conf_len, "%s/policy.conf", dir);
	FILE *f = fopen(conf_path, "w");
	if (!f) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", conf_path, strerror(errno));
		return -1;
	}
	fprintf(f, "# The sending policy of herald-policy-bench (--seed %llu): heraldd's\n"
		"# built-in rules; three lists replaced by files next to this one.\n"
		"policy = {\n"
		"  enabled = true;\n"
		"  lists = {\n"
		"    prohibited = { files = [\"prohibited.txt\"]; };  # %zu terms\n"
		"    sensitive = { files = [\"sensitive.txt\"]; };    # %zu terms\n"
		"    civility = { files = [\"civility.txt\"]; };      # %zu terms\n"
		"  };\n"
		"};\n", (unsigned long long)seed, terms[0], terms[1], terms[2]);
	if (fclose(f) != 0) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", conf_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- what the loaded policy checks ---------------------------------------- */

/* A terms rule whose hits in the body reject or hold, with its list. */
typedef struct pb_plant_rule {
	const char *id;            /* points into the parsed policy */
	bool reject;               /* else hold */
	unsigned channels;         /* bit per hd_channel_t */
	const config_setting_t *terms;
} pb_plant_rule_t;

typedef struct pb_plan {
	config_t cfg;              /* the loaded policy, printed and parsed back */
	pb_plant_rule_t rules[PB_MAX_PLANT_RULES];
	size_t count;
} pb_plan_t;

static bool pb_has_name(const config_setting_t *arr, const char *name)
{
	int n = arr ? config_setting_length(arr) : 0;
	for (int i = 0; i < n; i++) {
		const char *s = config_setting_get_string_elem(arr, i);
		if (s && strcmp(s, name) == 0)
			return true;
	}
	return false;
}

/*
 * The rules a planted term can trigger, read from the effective policy
 * (hd_policy_print: terms as matched, i.e. folded), so a --config of
 * any shape is planted correctly.
 */
static int pb_plan_read(pb_plan_t *plan, const hd_policy_t *policy)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		hd_panic("herald-policy-bench: open_memstream failed");
	hd_policy_print(policy, mem);
	fclose(mem);
	config_init(&plan->cfg);
	int ok = config_read_string(&plan->cfg, text);
	free(text);
	if (ok != CONFIG_TRUE) {
		fprintf(stderr, "herald-policy-bench: cannot read the printed policy: line %d: %s\n",
			config_error_line(&plan->cfg), config_error_text(&plan->cfg));
		return -1;
	}
	if (!hd_policy_is_enabled(policy))
		return 0;  /* nothing can be found: every message is clean */
	const config_setting_t *rules = config_lookup(&plan->cfg, "policy.rules");
	const config_setting_t *lists = config_lookup(&plan->cfg, "policy.lists");
	int n = rules ? config_setting_length(rules) : 0;
	static const char *const channels[] = {"email", "im", "sms"};
	for (int i = 0; i < n && plan->count < PB_COUNT(plan->rules); i++) {
		const config_setting_t *r = config_setting_get_elem(rules, (unsigned)i);
		const char *id = NULL, *check = NULL, *action = NULL, *list = NULL;
		int enabled = 0;
		config_setting_lookup_string(r, "id", &id);
		config_setting_lookup_string(r, "check", &check);
		config_setting_lookup_string(r, "action", &action);
		config_setting_lookup_string(r, "list", &list);
		config_setting_lookup_bool(r, "enabled", &enabled);
		if (!id || !check || !action || !list || !enabled || strcmp(check, "terms") != 0 ||
		    (strcmp(action, "reject") != 0 && strcmp(action, "hold") != 0) ||
		    !pb_has_name(config_setting_get_member(r, "fields"), "body"))
			continue;
		const config_setting_t *l = lists ? config_setting_get_member(lists, list) : NULL;
		const config_setting_t *terms = l ? config_setting_get_member(l, "terms") : NULL;
		if (!terms || config_setting_length(terms) == 0)
			continue;
		pb_plant_rule_t *p = &plan->rules[plan->count];
		p->id = id;
		p->reject = strcmp(action, "reject") == 0;
		p->terms = terms;
		p->channels = 0;
		for (unsigned c = 0; c < 3; c++)
			if (pb_has_name(config_setting_get_member(r, "channels"), channels[c]))
				p->channels |= 1u << c;
		if (p->channels)
			plan->count++;
	}
	return 0;
}

/* ---- messages ---------------------------------------------------------------- */

typedef struct pb_case {
	hd_msg_t *msg;
	const pb_plant_rule_t *planted;  /* NULL: clean */
	size_t bytes;                    /* subject + body */
} pb_case_t;

/* Sentences of either language, alternating at random, until target bytes. */
static size_t pb_pieces(pb_rng_t *r, size_t target, char **pieces, size_t max)
{
	size_t n = 0, bytes = 0;
	pb_str_t s = {0};
	while (bytes < target && n < max) {
		s.len = 0;
		if (pb_below(r, 2) == 0)
			pb_str_add_template(&s, r, pb_zh_sentences[pb_below(r, PB_COUNT(pb_zh_sentences))]);
		else
			pb_str_add_template(&s, r, pb_en_sentences[pb_below(r, PB_COUNT(pb_en_sentences))]);
		pieces[n++] = hd_strdup(s.data);
		bytes += s.len + 1;
	}
	free(s.data);
	return n;
}

static char *pb_join(char **pieces, size_t n)
{
	pb_str_t s = {0};
	pb_str_add(&s, "", 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			pb_str_add(&s, " ", 1);
		pb_str_adds(&s, pieces[i]);
	}
	return s.data;
}

static size_t pb_sms_parts(const char *text)
{
	hd_sms_segments_t seg;
	if (hd_sms_segments_count(text, strlen(text), &seg) != HD_OK)
		return SIZE_MAX;
	return seg.segments;
}

/*
 * One message of channel; with plant set, one of plant's terms goes in
 * between two sentences of the body.
 */
static hd_msg_t *pb_message(pb_rng_t *r, hd_channel_t channel, const pb_plant_rule_t *plant)
{
	char *pieces[PB_MAX_PIECES + 1];
	size_t target = channel == HD_CHANNEL_EMAIL ? PB_BODY_BYTES
			: channel == HD_CHANNEL_IM ? PB_IM_BYTES : 300;
	size_t n = pb_pieces(r, target, pieces, PB_MAX_PIECES);
	size_t at = SIZE_MAX;  /* the planted piece */
	if (plant) {
		int count = config_setting_length(plant->terms);
		const char *term = config_setting_get_string_elem(plant->terms,
								  (int)pb_below(r, (size_t)count));
		at = pb_below(r, n + 1);
		memmove(pieces + at + 1, pieces + at, (n - at) * sizeof(*pieces));
		pieces[at] = hd_strdup(term);
		n++;
	}
	char *body = pb_join(pieces, n);
	/* SMS: drop clean sentences from the end until the text fits. */
	while (channel == HD_CHANNEL_SMS && pb_sms_parts(body) > PB_SMS_MAX_PARTS && n > 1) {
		size_t drop = n - 1 == at ? n - 2 : n - 1;
		free(pieces[drop]);
		memmove(pieces + drop, pieces + drop + 1, (n - drop - 1) * sizeof(*pieces));
		if (drop < at && at != SIZE_MAX)
			at--;
		n--;
		free(body);
		body = pb_join(pieces, n);
	}
	for (size_t i = 0; i < n; i++)
		free(pieces[i]);

	hd_msg_t *m = hd_msg_new(channel);
	m->sender = hd_strdup("bench@example.com");
	m->body = body;
	switch (channel) {
	case HD_CHANNEL_EMAIL: {
		pb_str_t s = {0};
		pb_str_add_template(&s, r, pb_subjects[pb_below(r, PB_COUNT(pb_subjects))]);
		m->subject = s.data;
		hd_msg_add_to(m, "user1@example.com");
		break;
	}
	case HD_CHANNEL_IM:
		hd_msg_add_to(m, "ops-oncall");
		break;
	case HD_CHANNEL_SMS:
		hd_msg_add_to(m, "+8613800138000");
		m->purpose = HD_PURPOSE_SERVICE;
		break;
	}
	return m;
}

/* A rule of plan that can be planted in channel, or NULL. */
static const pb_plant_rule_t *pb_pick_rule(pb_rng_t *r, const pb_plan_t *plan,
					   hd_channel_t channel)
{
	const pb_plant_rule_t *fit[PB_MAX_PLANT_RULES];
	size_t n = 0;
	for (size_t i = 0; i < plan->count; i++)
		if (plan->rules[i].channels & (1u << channel))
			fit[n++] = &plan->rules[i];
	return n ? fit[pb_below(r, n)] : NULL;
}

/*
 * Check one verdict against what the message holds. Returns NULL when
 * right, else what is wrong (static storage).
 */
static const char *pb_verdict_wrong(const pb_case_t *c, const hd_policy_verdict_t *v)
{
	if (!c->planted) {
		if (v->reject >= 0)
			return "a clean message was rejected";
		if (v->important)
			return "a clean message was held as important";
		return NULL;
	}
	bool found = false;
	for (size_t i = 0; i < v->count && !found; i++)
		found = strcmp(v->findings[i].rule, c->planted->id) == 0;
	if (!found)
		return "the planted term was not found";
	if (c->planted->reject && v->reject < 0)
		return "the planted term of a reject rule did not reject";
	if (!c->planted->reject && !v->important)
		return "the planted term of a hold rule did not hold";
	return NULL;
}

static void pb_print_failure(const pb_case_t *c, const hd_policy_verdict_t *v, const char *what)
{
	fprintf(stderr, "herald-policy-bench: WRONG: %s (channel %s, planted rule %s)\n", what,
		hd_channel_name(c->msg->channel), c->planted ? c->planted->id : "none");
	for (size_t i = 0; i < v->count; i++)
		fprintf(stderr, "  finding %s %s: %s\n", v->findings[i].rule,
			hd_policy_action_name(v->findings[i].action), v->findings[i].reason);
	size_t len = strlen(c->msg->body), cut = len > 300 ? 300 : len;
	while (cut < len && (c->msg->body[cut] & 0xc0) == 0x80)
		cut--;  /* not inside a UTF-8 sequence */
	fprintf(stderr, "  subject: %s\n  body: %.*s%s\n", c->msg->subject ? c->msg->subject : "-",
		(int)cut, c->msg->body, cut < len ? "..." : "");
}

/* ---- texts for herald-bench ------------------------------------------------- */

static int pb_write_texts(const char *path, size_t count, hd_policy_t *policy, uint64_t seed,
			  int64_t now_s, size_t *bytes_out)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", path, strerror(errno));
		return 2;
	}
	pb_rng_t r = {seed ^ UINT64_C(0x7465787473)};
	hd_policy_verdict_t v;
	size_t bytes = 0;
	int status = 0;
	for (size_t i = 0; i < count; i++) {
		pb_case_t c = {pb_message(&r, HD_CHANNEL_EMAIL, NULL), NULL, 0};
		if (hd_policy_evaluate(policy, c.msg, now_s, &v) != HD_OK) {
			fprintf(stderr, "herald-policy-bench: evaluation failed\n");
			status = 1;
		} else {
			const char *wrong = pb_verdict_wrong(&c, &v);
			if (wrong) {
				pb_print_failure(&c, &v, wrong);
				status = 1;
			}
		}
		fprintf(f, "%s\t%s\n", c.msg->subject, c.msg->body);
		bytes += strlen(c.msg->subject) + strlen(c.msg->body);
		hd_msg_destroy(&c.msg);
		if (status != 0)
			break;
	}
	if (fclose(f) != 0 && status == 0) {
		fprintf(stderr, "herald-policy-bench: %s: %s\n", path, strerror(errno));
		status = 2;
	}
	*bytes_out = count ? bytes / count : 0;
	return status;
}

/* ---- main ------------------------------------------------------------------- */

typedef struct pb_opts {
	const char *config;
	const char *write_config;
	const char *write_texts;
	size_t messages;
	size_t texts;
	long seconds;
	double planted_pct;
	uint64_t seed;
	size_t terms[3];
	long cpu;       /* -1: the CPU the bench starts on */
} pb_opts_t;

static void pb_usage(FILE *out)
{
	fputs("usage: herald-policy-bench [--config FILE | --write-config DIR] [--messages N]\n"
	      "                           [--seconds S] [--planted-pct P] [--seed N]\n"
	      "                           [--terms PROHIBITED,SENSITIVE,CIVILITY] [--cpu N]\n"
	      "                           [--write-texts FILE] [--texts N]\n"
	      "  --config FILE       evaluate this heraldd configuration's policy as given\n"
	      "  --write-config DIR  write the generated policy there (policy.conf + lists) and keep it\n"
	      "                      (default: a temporary directory, removed at the end)\n"
	      "  --terms P,S,C       generated terms per list (default 5000,3000,2000)\n"
	      "  --messages N        distinct messages evaluated round robin (default 1000)\n"
	      "  --seconds S         length of the timed loop (default 5)\n"
	      "  --planted-pct P     share of messages with a planted term (default 5)\n"
	      "  --seed N            seed of terms and messages (default 1)\n"
	      "  --cpu N             pin to this CPU (default: the one it starts on)\n"
	      "  --write-texts FILE  write clean email texts (SUBJECT<TAB>BODY lines) for\n"
	      "                      herald-bench --text-file\n"
	      "  --texts N           how many (default 1000)\n", out);
}

static bool pb_parse_terms(const char *s, size_t terms[3])
{
	char buf[64];
	if (strlen(s) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", s);
	char *save = NULL;
	char *tok = strtok_r(buf, ",", &save);
	for (int i = 0; i < 3; i++) {
		long v;
		if (!tok || !hd_num_parse_long(tok, 1, PB_MAX_LIST_TERMS, &v))
			return false;
		terms[i] = (size_t)v;
		tok = strtok_r(NULL, ",", &save);
	}
	return tok == NULL;
}

/* Pin this thread to one CPU; describes the outcome in what. */
static void pb_pin(long cpu, char *what, size_t len)
{
	int target = cpu >= 0 ? (int)cpu : sched_getcpu();
	if (target < 0) {
		snprintf(what, len, "not pinned (sched_getcpu: %s)", strerror(errno));
		return;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((size_t)target, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		snprintf(what, len, "not pinned (sched_setaffinity cpu %d: %s)", target,
			 strerror(errno));
	else
		snprintf(what, len, "%d", target);
}

static void pb_remove_dir(const char *dir)
{
	static const char *const files[] = {"policy.conf", "prohibited.txt", "sensitive.txt",
					    "civility.txt"};
	char path[4200];
	for (size_t i = 0; i < PB_COUNT(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	pb_opts_t o = {
		.messages = 1000, .texts = 1000, .seconds = 5, .planted_pct = 5.0, .seed = 1,
		.terms = {5000, 3000, 2000}, .cpu = -1,
	};
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"write-config", required_argument, NULL, 'w'},
		{"messages", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{"planted-pct", required_argument, NULL, 'p'},
		{"seed", required_argument, NULL, 'S'},
		{"terms", required_argument, NULL, 't'},
		{"cpu", required_argument, NULL, 'C'},
		{"write-texts", required_argument, NULL, 'T'},
		{"texts", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	long v;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': o.config = optarg; break;
		case 'w': o.write_config = optarg; break;
		case 'T': o.write_texts = optarg; break;
		case 'n':
			if (!hd_num_parse_long(optarg, 1, PB_MAX_MESSAGES, &v))
				goto bad;
			o.messages = (size_t)v;
			break;
		case 'N':
			if (!hd_num_parse_long(optarg, 1, PB_MAX_TEXTS, &v))
				goto bad;
			o.texts = (size_t)v;
			break;
		case 's':
			if (!hd_num_parse_long(optarg, 1, PB_MAX_SECONDS, &v))
				goto bad;
			o.seconds = v;
			break;
		case 'p': {
			char *end = NULL;
			o.planted_pct = strtod(optarg, &end);
			if (!end || *end != '\0' || end == optarg || !(o.planted_pct >= 0) ||
			    o.planted_pct > 100)
				goto bad;
			break;
		}
		case 'S':
			if (!hd_num_parse_long(optarg, 0, 0x7fffffffL, &v))
				goto bad;
			o.seed = (uint64_t)v;
			break;
		case 't':
			if (!pb_parse_terms(optarg, o.terms))
				goto bad;
			break;
		case 'C':
			if (!hd_num_parse_long(optarg, 0, CPU_SETSIZE - 1, &v))
				goto bad;
			o.cpu = v;
			break;
		case 'h': pb_usage(stdout); return 0;
		default: pb_usage(stderr); return 2;
		}
	}
	if (optind != argc || (o.config && o.write_config)) {
		pb_usage(stderr);
		return 2;
	}

	/* The policy file. */
	char conf_path[4300], tmp_dir[] = "/tmp/herald-policy-bench.XXXXXX";
	const char *made_dir = NULL;
	if (o.config) {
		snprintf(conf_path, sizeof(conf_path), "%s", o.config);
	} else {
		made_dir = o.write_config;
		if (!made_dir) {
			if (!mkdtemp(tmp_dir)) {
				fprintf(stderr, "herald-policy-bench: mkdtemp: %s\n", strerror(errno));
				return 2;
			}
			made_dir = tmp_dir;
		}
		if (pb_write_config(made_dir, o.terms, o.seed, conf_path, sizeof(conf_path)) != 0)
			return 2;
	}
	char err[512];
	hd_policy_t *policy = NULL;
	int64_t t0 = pb_ns(CLOCK_MONOTONIC);
	int rc = hd_policy_load(conf_path, &policy, err, sizeof(err));
	int64_t load_ns = pb_ns(CLOCK_MONOTONIC) - t0;
	if (made_dir == tmp_dir)
		pb_remove_dir(tmp_dir);
	if (rc != HD_OK) {
		fprintf(stderr, "herald-policy-bench: %s\n", err);
		return 2;
	}
	pb_plan_t plan;
	memset(&plan, 0, sizeof(plan));
	if (pb_plan_read(&plan, policy) != 0) {
		hd_policy_destroy(&policy);
		return 2;
	}
	int64_t now_s = (int64_t)time(NULL);
	int status = 0;

	/* The messages: 70% email, 20% IM, 10% SMS; planted_pct with a term. */
	pb_rng_t r = {o.seed ^ UINT64_C(0x6d657373616765)};
	pb_case_t *cases = hd_calloc(o.messages, sizeof(*cases));
	size_t per_channel[3] = {0}, planted = 0, planted_reject = 0, total_bytes = 0;
	for (size_t i = 0; i < o.messages; i++) {
		size_t roll = pb_below(&r, 10);
		hd_channel_t ch = roll < 7 ? HD_CHANNEL_EMAIL : roll < 9 ? HD_CHANNEL_IM
								 : HD_CHANNEL_SMS;
		const pb_plant_rule_t *plant = NULL;
		if ((double)pb_below(&r, 10000) < o.planted_pct * 100.0)
			plant = pb_pick_rule(&r, &plan, ch);
		cases[i].msg = pb_message(&r, ch, plant);
		cases[i].planted = plant;
		cases[i].bytes = (cases[i].msg->subject ? strlen(cases[i].msg->subject) : 0) +
				 strlen(cases[i].msg->body);
		total_bytes += cases[i].bytes;
		per_channel[ch]++;
		planted += plant != NULL;
		planted_reject += plant && plant->reject;
	}

	/* Correctness, and a warm-up: every message once. */
	hd_policy_verdict_t verdict;
	int failures = 0;
	for (size_t i = 0; i < o.messages; i++) {
		if (hd_policy_evaluate(policy, cases[i].msg, now_s, &verdict) != HD_OK) {
			fprintf(stderr, "herald-policy-bench: evaluation %zu failed\n", i);
			failures++;
			continue;
		}
		const char *wrong = pb_verdict_wrong(&cases[i], &verdict);
		if (wrong && failures++ < PB_MAX_FAILURES)
			pb_print_failure(&cases[i], &verdict, wrong);
	}
	if (failures > 0) {
		fprintf(stderr, "herald-policy-bench: %d of %zu messages evaluated wrongly\n",
			failures, o.messages);
		status = 1;
	}

	size_t text_bytes = 0;
	if (status == 0 && o.write_texts) {
		int trc = pb_write_texts(o.write_texts, o.texts, policy, o.seed, now_s, &text_bytes);
		if (trc != 0)
			status = trc;
	}

	if (status == 0) {
		/* The timed loop: one thread, one CPU. */
		char pinned[160];
		pb_pin(o.cpu, pinned, sizeof(pinned));
		size_t evals = 0, with_findings = 0, bytes = 0, i = 0, eval_errors = 0;
		int64_t deadline = pb_ns(CLOCK_MONOTONIC) + o.seconds * PB_NS_PER_S;
		int64_t w0 = pb_ns(CLOCK_MONOTONIC), c0 = pb_ns(CLOCK_THREAD_CPUTIME_ID), w1;
		for (;;) {
			for (unsigned k = 0; k < PB_CHECK_EVERY; k++) {
				const pb_case_t *c = &cases[i];
				if (hd_policy_evaluate(policy, c->msg, now_s, &verdict) != HD_OK)
					eval_errors++;
				with_findings += verdict.count > 0;
				bytes += c->bytes;
				if (++i == o.messages)
					i = 0;
			}
			evals += PB_CHECK_EVERY;
			if ((w1 = pb_ns(CLOCK_MONOTONIC)) >= deadline)
				break;
		}
		int64_t cpu_ns = pb_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
		double cpu_s = (double)cpu_ns / (double)PB_NS_PER_S;
		double wall_s = (double)(w1 - w0) / (double)PB_NS_PER_S;
		if (eval_errors > 0) {
			fprintf(stderr, "herald-policy-bench: %zu evaluations failed\n", eval_errors);
			status = 1;
		}
		printf("policy evals_per_s=%.0f ns_per_eval=%.0f mb_per_s=%.1f wall_evals_per_s=%.0f "
		       "terms=%zu rules=%zu load_ms=%.0f messages=%zu email=%zu im=%zu sms=%zu "
		       "avg_bytes=%zu planted=%zu planted_reject=%zu findings_pct=%.2f evals=%zu "
		       "cpu_s=%.3f wall_s=%.3f cpu=%s wrong=%d texts=%zu text_avg_bytes=%zu\n",
		       (double)evals / cpu_s, (double)cpu_ns / (double)evals,
		       (double)bytes / cpu_s / 1e6, (double)evals / wall_s,
		       hd_policy_term_count(policy), hd_policy_rule_count(policy),
		       (double)load_ns / 1e6, o.messages, per_channel[HD_CHANNEL_EMAIL],
		       per_channel[HD_CHANNEL_IM], per_channel[HD_CHANNEL_SMS],
		       total_bytes / o.messages, planted, planted_reject,
		       100.0 * (double)with_findings / (double)evals, evals, cpu_s, wall_s, pinned,
		       failures, o.write_texts ? o.texts : 0, text_bytes);
	}

	for (size_t i = 0; i < o.messages; i++)
		hd_msg_destroy(&cases[i].msg);
	free(cases);
	config_destroy(&plan.cfg);
	hd_policy_destroy(&policy);
	return status;
bad:
	fprintf(stderr, "herald-policy-bench: bad value '%s' for an option\n", optarg);
	pb_usage(stderr);
	return 2;
}
