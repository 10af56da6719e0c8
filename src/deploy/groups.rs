//! Update groups, pure: containers whose units name each other's units
//! (`After=`, `Requires=`, `Wants=`, `Before=`) or whose manifest entries
//! say `after` are updated together, in dependency order. `update --all`
//! makes one group per connected component of that graph (etcd → flannel
//! → engine is one group, an unrelated httpd another); `update A B C`
//! makes one group of what it names.

use std::collections::{BTreeMap, BTreeSet};

/// One installed container, as the grouping sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The container name.
    pub name: String,
    /// Its units (`etcd.service`).
    pub units: Vec<String>,
    /// Units its units order themselves after or pull in: `After=`,
    /// `Requires=`, `Wants=`.
    pub needs: Vec<String>,
    /// Units its units order themselves before (`Before=`).
    pub before: Vec<String>,
    /// Containers a manifest entry orders it after (`after`, `requires`).
    pub after: Vec<String>,
}

/// Groups, each in the order its members are switched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    /// One list per group, dependencies first; groups by their first name.
    pub groups: Vec<Vec<String>>,
    /// Containers whose ordering is a cycle: switched by name, one line each.
    pub cycles: Vec<String>,
}

/// The edges `dependency → dependent` between `nodes`.
fn edges(nodes: &[Node]) -> BTreeSet<(String, String)> {
    let owner: BTreeMap<&str, &str> = nodes
        .iter()
        .flat_map(|n| n.units.iter().map(move |u| (u.as_str(), n.name.as_str())))
        .collect();
    let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut out = BTreeSet::new();
    for n in nodes {
        for u in &n.needs {
            if let Some(dep) = owner.get(u.as_str()).filter(|d| **d != n.name) {
                out.insert((dep.to_string(), n.name.clone()));
            }
        }
        for u in &n.before {
            if let Some(dependent) = owner.get(u.as_str()).filter(|d| **d != n.name) {
                out.insert((n.name.clone(), dependent.to_string()));
            }
        }
        for a in n
            .after
            .iter()
            .filter(|a| names.contains(a.as_str()) && **a != n.name)
        {
            out.insert((a.clone(), n.name.clone()));
        }
    }
    out
}

/// The connected components of `nodes`, each in dependency order.
pub fn groups(nodes: &[Node]) -> Groups {
    let edges = edges(nodes);
    // Union-find over names, smallest name as representative.
    let mut rep: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.name.clone()))
        .collect();
    fn find(rep: &BTreeMap<String, String>, n: &str) -> String {
        let mut cur = n.to_string();
        while let Some(p) = rep.get(&cur).filter(|p| **p != cur) {
            cur = p.clone();
        }
        cur
    }
    for (a, b) in &edges {
        let (ra, rb) = (find(&rep, a), find(&rep, b));
        let (lo, hi) = if ra <= rb { (ra, rb) } else { (rb, ra) };
        rep.insert(hi, lo);
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes {
        members
            .entry(find(&rep, &n.name))
            .or_default()
            .push(n.name.clone());
    }
    let mut out = Groups::default();
    for names in members.into_values() {
        let (order, cycle) = topological(&names, &edges);
        if !cycle.is_empty() {
            out.cycles.push(format!(
                "{} order each other in a cycle; switching them by name",
                cycle.join(", ")
            ));
        }
        out.groups.push(order);
    }
    out.groups.sort();
    out
}

/// `nodes` as one group (what `update A B C` names), in dependency order.
pub fn one_group(nodes: &[Node]) -> Groups {
    let mut g = groups(nodes);
    let mut all: Vec<String> = g.groups.drain(..).flatten().collect();
    // Groups are independent: their concatenation is still in order.
    all.dedup();
    g.groups = vec![all];
    g
}

/// Kahn's order of `names` (ready names by name), and the names left in
/// a cycle, appended by name.
fn topological(names: &[String], edges: &BTreeSet<(String, String)>) -> (Vec<String>, Vec<String>) {
    let inside: BTreeSet<&String> = names.iter().collect();
    let mut pending: BTreeMap<&String, usize> = names.iter().map(|n| (n, 0)).collect();
    for (_, b) in edges
        .iter()
        .filter(|(a, b)| inside.contains(a) && inside.contains(b))
    {
        if let Some(c) = pending.get_mut(b) {
            *c += 1;
        }
    }
    let mut order = Vec::new();
    let mut ready: BTreeSet<&String> = pending
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    while let Some(n) = ready.pop_first() {
        pending.remove(n);
        order.push(n.clone());
        for (_, b) in edges.iter().filter(|(a, b)| a == n && inside.contains(b)) {
            if let Some(c) = pending.get_mut(b) {
                *c -= 1;
                if *c == 0 {
                    ready.insert(b);
                }
            }
        }
    }
    let cycle: Vec<String> = pending.keys().map(|n| n.to_string()).collect();
    order.extend(cycle.iter().cloned());
    (order, cycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, needs: &[&str]) -> Node {
        Node {
            name: name.into(),
            units: vec![format!("{name}.service")],
            needs: needs.iter().map(|s| s.to_string()).collect(),
            ..Node::default()
        }
    }

    fn names(g: &[&[&str]]) -> Vec<Vec<String>> {
        g.iter()
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_chain_is_one_group_in_order_and_the_unrelated_is_another() {
        let nodes = [
            node("engine", &["flannel.service", "network-online.target"]),
            node("httpd", &["network.target"]),
            node("flannel", &["etcd.service"]),
            node("etcd", &[]),
        ];
        let g = groups(&nodes);
        assert_eq!(
            g.groups,
            names(&[&["etcd", "flannel", "engine"], &["httpd"]])
        );
        assert!(g.cycles.is_empty());
    }

    #[test]
    fn before_and_manifest_after_are_edges_too() {
        let mut a = node("a", &[]);
        a.before = vec!["b.service".into()];
        let mut c = node("c", &[]);
        c.after = vec!["b".into(), "not-installed".into()];
        let g = groups(&[c, node("b", &[]), a]);
        assert_eq!(g.groups, names(&[&["a", "b", "c"]]));
    }

    #[test]
    fn a_diamond_keeps_dependencies_first() {
        let nodes = [
            node("top", &["left.service", "right.service"]),
            node("left", &["base.service"]),
            node("right", &["base.service"]),
            node("base", &[]),
        ];
        let g = groups(&nodes);
        assert_eq!(g.groups, names(&[&["base", "left", "right", "top"]]));
    }

    #[test]
    fn a_cycle_is_switched_by_name_and_reported() {
        let nodes = [node("y", &["x.service"]), node("x", &["y.service"])];
        let g = groups(&nodes);
        assert_eq!(g.groups, names(&[&["x", "y"]]));
        assert_eq!(g.cycles.len(), 1, "{:?}", g.cycles);
        assert!(g.cycles[0].starts_with("x, y "), "{:?}", g.cycles);
    }

    #[test]
    fn one_group_keeps_the_order_of_what_it_names() {
        let nodes = [
            node("c", &["b.service"]),
            node("z", &[]),
            node("b", &["a.service"]),
            node("a", &[]),
        ];
        let g = one_group(&nodes);
        assert_eq!(g.groups, names(&[&["a", "b", "c", "z"]]));
    }

    #[test]
    fn a_unit_naming_itself_makes_no_edge() {
        let g = groups(&[node("a", &["a.service"])]);
        assert_eq!(g.groups, names(&[&["a"]]));
        assert!(g.cycles.is_empty());
    }
}
