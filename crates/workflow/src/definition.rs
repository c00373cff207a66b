//! Workflow definitions: the file format (TOML or JSON), and [`Definition::compile`],
//! which refuses a definition with any structural problem — an unknown or unreachable
//! node, a guard that does not parse or type-check, a human node without an assignee, an
//! approval chain without levels, an end that cannot be reached — naming each problem.
//! Guards are compiled once against the definition's typed field schema.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use zhudai_expr::{Condition, Record, Schema, Type};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A person does something and completes it (`complete`), e.g. 资料审核.
    Task,
    /// One or more levels of approvers decide (`approve` / `reject`).
    Approval,
    /// The engine moves on by itself along the first `auto` transition whose guard holds.
    Automatic,
    /// Waits for an outside event (`event:<name>`), e.g. a funder's callback.
    Wait,
    /// The instance is finished with this node's outcome.
    End,
}

/// How the approvers of one level decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The first approval decides the level (或签).
    #[default]
    OneOf,
    /// `count` distinct approvals are needed (会签).
    AllOf,
}

/// Who works on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssigneeSpec {
    /// A role code (`doc_verifier`, `approver_l1`…), or `submitter` for the person who
    /// submitted the instance.
    pub role: String,
}

/// One level of an approval chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    pub role: String,
    #[serde(default)]
    pub mode: ApprovalMode,
    /// Distinct approvals needed for `all_of` (default 2).
    #[serde(default)]
    pub count: Option<u32>,
}

/// A rule choosing the approval chain: the first rule whose `when` holds (or that has
/// none) gives the levels, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRule {
    #[serde(default)]
    pub when: Option<String>,
    pub levels: Vec<LevelSpec>,
}

/// Time limits of a node, in hours after it was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SlaSpec {
    pub remind_after_hours: Option<u32>,
    pub escalate_after_hours: Option<u32>,
    pub auto_return_after_hours: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: String,
    pub kind: NodeKind,
    /// Display name (zh-CN); `name_en` optional.
    pub name: String,
    #[serde(default)]
    pub name_en: Option<String>,
    #[serde(default)]
    pub assignee: Option<AssigneeSpec>,
    /// Approval nodes: the chain rules.
    #[serde(default)]
    pub chain: Vec<ChainRule>,
    /// Wait nodes: the event that ends the wait.
    #[serde(default)]
    pub event: Option<String>,
    /// End nodes: `approved`, `completed`, `rejected`, `withdrawn`, `expired`…
    #[serde(default)]
    pub outcome: Option<String>,
    /// Task nodes: the person who submitted may not do this task (four eyes).
    #[serde(default)]
    pub four_eyes: bool,
    #[serde(default)]
    pub sla: Option<SlaSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionSpec {
    pub from: String,
    pub to: String,
    /// `submit`, `complete`, `approve`, `reject`, `withdraw`, `auto`, `timeout` or
    /// `event:<name>`.
    pub on: String,
    #[serde(default)]
    pub guard: Option<String>,
}

/// A definition as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionSpec {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Typed facts the guards may read: `"app.amount" = "decimal(2)"`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub start: String,
    pub nodes: Vec<NodeSpec>,
    pub transitions: Vec<TransitionSpec>,
}

/// A problem with a definition, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `nodes[approval].chain[0].when`, `transitions[3].guard`, `start`…
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// Parses a field type as written in a definition: `bool`, `int`, `string`, `date`,
/// `decimal(2)`, `list<string>`, `optional<int>`.
pub fn parse_type(s: &str) -> Option<Type> {
    let s = s.trim();
    if let Some(inner) = s
        .strip_prefix("optional<")
        .and_then(|r| r.strip_suffix('>'))
    {
        return parse_type(inner).map(Type::optional);
    }
    if let Some(inner) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
        return parse_type(inner).map(Type::list);
    }
    if let Some(scale) = s.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
        return scale
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| *s <= zhudai_expr::MAX_SCALE)
            .map(Type::decimal);
    }
    match s {
        "bool" => Some(Type::Bool),
        "int" => Some(Type::Int),
        "string" => Some(Type::String),
        "date" => Some(Type::Date),
        _ => None,
    }
}

/// A compiled guard with its source.
#[derive(Debug)]
pub struct Guard {
    pub source: String,
    pub condition: Condition,
}

/// A compiled chain rule.
#[derive(Debug)]
pub struct Chain {
    pub when: Option<Guard>,
    pub levels: Vec<LevelSpec>,
}

/// A compiled transition.
#[derive(Debug)]
pub struct Transition {
    pub from: usize,
    pub to: usize,
    pub on: String,
    pub guard: Option<Guard>,
}

/// A compiled node.
#[derive(Debug)]
pub struct Node {
    pub spec: NodeSpec,
    pub chain: Vec<Chain>,
}

/// A definition that passed every check, with its guards compiled.
#[derive(Debug)]
pub struct Definition {
    pub spec: DefinitionSpec,
    pub schema: Schema,
    pub nodes: Vec<Node>,
    pub transitions: Vec<Transition>,
    pub start: usize,
}

const ACTIONS: &[&str] = &[
    "submit", "complete", "approve", "reject", "withdraw", "auto", "timeout",
];

fn compile_guard(
    source: &str,
    schema: &Schema,
    path: String,
    problems: &mut Vec<Problem>,
) -> Option<Guard> {
    match Condition::compile(source, schema) {
        Ok(condition) => Some(Guard {
            source: source.to_owned(),
            condition,
        }),
        Err(e) => {
            problems.push(Problem::new(
                path,
                "guard",
                format!(
                    "the guard `{source}` does not compile: {} [{}] at line {}, column {}",
                    e.message, e.code, e.line, e.column
                ),
            ));
            None
        }
    }
}

impl Definition {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Definition, Vec<Problem>> {
        let spec: DefinitionSpec = toml::from_str(text)
            .map_err(|e| vec![Problem::new("file", "syntax", e.to_string())])?;
        Definition::compile(spec)
    }

    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Definition, Vec<Problem>> {
        let spec: DefinitionSpec = serde_json::from_str(text)
            .map_err(|e| vec![Problem::new("file", "syntax", e.to_string())])?;
        Definition::compile(spec)
    }

    /// Checks everything and compiles the guards; returns every problem found.
    pub fn compile(spec: DefinitionSpec) -> Result<Definition, Vec<Problem>> {
        let mut problems = Vec::new();
        if spec.code.trim().is_empty()
            || !spec
                .code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(Problem::new(
                "code",
                "invalid",
                "the code is lower-case letters, digits and `_`",
            ));
        }
        let mut builder = Schema::builder();
        for (name, ty) in &spec.fields {
            match parse_type(ty) {
                Some(t) => builder = builder.field(name, t),
                None => problems.push(Problem::new(
                    format!("fields.{name}"),
                    "type",
                    format!("unknown type `{ty}`; use bool, int, string, date, decimal(N), list<T> or optional<T>"),
                )),
            }
        }
        let schema = match builder.build() {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::new("fields", "schema", e.message.clone()));
                return Err(problems);
            }
        };

        let mut index = BTreeMap::new();
        for (i, n) in spec.nodes.iter().enumerate() {
            if index.insert(n.id.clone(), i).is_some() {
                problems.push(Problem::new(
                    format!("nodes[{}]", n.id),
                    "duplicate",
                    format!("two nodes have the id `{}`", n.id),
                ));
            }
        }
        let mut nodes = Vec::new();
        for n in &spec.nodes {
            let at = format!("nodes[{}]", n.id);
            let human = matches!(n.kind, NodeKind::Task | NodeKind::Approval);
            if n.kind == NodeKind::Task && n.assignee.is_none() {
                problems.push(Problem::new(
                    format!("{at}.assignee"),
                    "no_assignee",
                    format!("the task node `{}` has no assignee (give a role)", n.id),
                ));
            }
            if !human && n.assignee.is_some() {
                problems.push(Problem::new(
                    format!("{at}.assignee"),
                    "assignee_not_allowed",
                    format!("a {:?} node does not take an assignee", n.kind),
                ));
            }
            if let Some(a) = &n.assignee {
                if a.role.trim().is_empty() {
                    problems.push(Problem::new(
                        format!("{at}.assignee.role"),
                        "no_assignee",
                        "the assignee role is empty",
                    ));
                }
            }
            let mut chain = Vec::new();
            if n.kind == NodeKind::Approval {
                if n.chain.is_empty() {
                    problems.push(Problem::new(
                        format!("{at}.chain"),
                        "no_assignee",
                        format!("the approval node `{}` has no approval chain", n.id),
                    ));
                }
                for (ci, rule) in n.chain.iter().enumerate() {
                    if rule.levels.is_empty() {
                        problems.push(Problem::new(
                            format!("{at}.chain[{ci}].levels"),
                            "no_assignee",
                            "a chain rule needs at least one level",
                        ));
                    }
                    for (li, l) in rule.levels.iter().enumerate() {
                        if l.role.trim().is_empty() || l.role == "submitter" {
                            problems.push(Problem::new(
                                format!("{at}.chain[{ci}].levels[{li}].role"),
                                "no_assignee",
                                "each level names an approver role (never the submitter)",
                            ));
                        }
                        if l.mode == ApprovalMode::AllOf && l.count.is_some_and(|c| c < 2) {
                            problems.push(Problem::new(
                                format!("{at}.chain[{ci}].levels[{li}].count"),
                                "count",
                                "all_of needs at least 2 approvals",
                            ));
                        }
                    }
                    let when = rule.when.as_deref().and_then(|w| {
                        compile_guard(w, &schema, format!("{at}.chain[{ci}].when"), &mut problems)
                    });
                    chain.push(Chain {
                        when,
                        levels: rule.levels.clone(),
                    });
                }
            } else if !n.chain.is_empty() {
                problems.push(Problem::new(
                    format!("{at}.chain"),
                    "chain_not_allowed",
                    "only approval nodes have a chain",
                ));
            }
            if n.kind == NodeKind::Wait && n.event.as_deref().is_none_or(str::is_empty) {
                problems.push(Problem::new(
                    format!("{at}.event"),
                    "no_event",
                    format!("the wait node `{}` names no event", n.id),
                ));
            }
            if n.kind == NodeKind::End && n.outcome.as_deref().is_none_or(str::is_empty) {
                problems.push(Problem::new(
                    format!("{at}.outcome"),
                    "no_outcome",
                    format!("the end node `{}` names no outcome", n.id),
                ));
            }
            nodes.push(Node {
                spec: n.clone(),
                chain,
            });
        }
        let start = match index.get(&spec.start) {
            Some(i) => *i,
            None => {
                problems.push(Problem::new(
                    "start",
                    "unknown_node",
                    format!("the start node `{}` does not exist", spec.start),
                ));
                0
            }
        };

        let mut transitions = Vec::new();
        for (ti, t) in spec.transitions.iter().enumerate() {
            let at = format!("transitions[{ti}]");
            let from = index.get(&t.from).copied();
            let to = index.get(&t.to).copied();
            if from.is_none() {
                problems.push(Problem::new(
                    format!("{at}.from"),
                    "unknown_node",
                    format!("no node has the id `{}`", t.from),
                ));
            }
            if to.is_none() {
                problems.push(Problem::new(
                    format!("{at}.to"),
                    "unknown_node",
                    format!("no node has the id `{}`", t.to),
                ));
            }
            let event_ok = t.on.strip_prefix("event:").is_some_and(|e| !e.is_empty());
            if !ACTIONS.contains(&t.on.as_str()) && !event_ok {
                problems.push(Problem::new(
                    format!("{at}.on"),
                    "unknown_action",
                    format!(
                        "`{}` is not an action; use {} or event:<name>",
                        t.on,
                        ACTIONS.join(", ")
                    ),
                ));
            }
            if let Some(f) = from {
                if nodes[f].spec.kind == NodeKind::End {
                    problems.push(Problem::new(
                        format!("{at}.from"),
                        "from_end",
                        format!("`{}` is an end node; nothing leaves it", t.from),
                    ));
                }
            }
            let guard = t
                .guard
                .as_deref()
                .and_then(|g| compile_guard(g, &schema, format!("{at}.guard"), &mut problems));
            if let (Some(from), Some(to)) = (from, to) {
                transitions.push(Transition {
                    from,
                    to,
                    on: t.on.clone(),
                    guard,
                });
            }
        }

        // Reachability from the start, and an end reachable from every node.
        if problems.is_empty() {
            let n = nodes.len();
            let mut seen = vec![false; n];
            let mut queue = VecDeque::from([start]);
            seen[start] = true;
            while let Some(i) = queue.pop_front() {
                for t in transitions.iter().filter(|t| t.from == i) {
                    if !seen[t.to] {
                        seen[t.to] = true;
                        queue.push_back(t.to);
                    }
                }
            }
            for (i, s) in seen.iter().enumerate() {
                if !s {
                    problems.push(Problem::new(
                        format!("nodes[{}]", nodes[i].spec.id),
                        "unreachable",
                        format!(
                            "the node `{}` cannot be reached from the start `{}`",
                            nodes[i].spec.id, spec.start
                        ),
                    ));
                }
            }
            let mut ends = vec![false; n];
            for (i, node) in nodes.iter().enumerate() {
                ends[i] = node.spec.kind == NodeKind::End;
            }
            loop {
                let mut changed = false;
                for t in &transitions {
                    if ends[t.to] && !ends[t.from] {
                        ends[t.from] = true;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            for (i, e) in ends.iter().enumerate() {
                if !e && seen[i] {
                    problems.push(Problem::new(
                        format!("nodes[{}]", nodes[i].spec.id),
                        "dead_end",
                        format!(
                            "no end node can be reached from `{}`: an instance there would be stuck forever",
                            nodes[i].spec.id
                        ),
                    ));
                }
            }
            for (i, node) in nodes.iter().enumerate() {
                let out: BTreeSet<&str> = transitions
                    .iter()
                    .filter(|t| t.from == i)
                    .map(|t| t.on.as_str())
                    .collect();
                let need: &[&str] = match node.spec.kind {
                    NodeKind::Approval => &["approve", "reject"],
                    NodeKind::Task => &[],
                    NodeKind::Automatic => &["auto"],
                    NodeKind::Wait | NodeKind::End => &[],
                };
                for a in need {
                    if !out.contains(a) {
                        problems.push(Problem::new(
                            format!("nodes[{}]", node.spec.id),
                            "missing_transition",
                            format!("the node `{}` needs a `{a}` transition", node.spec.id),
                        ));
                    }
                }
                if node.spec.kind == NodeKind::Wait {
                    let ev = format!("event:{}", node.spec.event.clone().unwrap_or_default());
                    if !out.contains(ev.as_str()) {
                        problems.push(Problem::new(
                            format!("nodes[{}]", node.spec.id),
                            "missing_transition",
                            format!(
                                "the wait node `{}` needs an `{ev}` transition",
                                node.spec.id
                            ),
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Definition {
            spec,
            schema,
            nodes,
            transitions,
            start,
        })
    }

    /// The index of a node by id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.spec.id == id)
    }

    /// A fresh record of this definition's facts, for the caller to fill.
    pub fn new_facts(&self) -> Record {
        self.schema.new_record()
    }

    /// The diagram of the definition in Graphviz DOT-like text, one edge per line
    /// (`from -> to [on, guard]`), for the designer page and reviews.
    pub fn edges(&self) -> Vec<(String, String, String, Option<String>)> {
        self.transitions
            .iter()
            .map(|t| {
                (
                    self.nodes[t.from].spec.id.clone(),
                    self.nodes[t.to].spec.id.clone(),
                    t.on.clone(),
                    t.guard.as_ref().map(|g| g.source.clone()),
                )
            })
            .collect()
    }
}
