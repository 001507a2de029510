//! `[[route]]`: a share of the farm's hashrate for the node (solo) and for
//! each upstream pool, by weight, while a node serves.

use serde::{Deserialize, Serialize};

use super::{ConfigIssue, UpstreamConfig};
use ndas_core::work::routes::RouteTo;

/// Largest weight one route may have (weights are relative).
const MAX_WEIGHT: f64 = 1_000_000.0;

/// One `[[route]]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `"node"`, or an `[[upstream]]`'s name.
    pub to: String,
    /// Its part of the farm, relative to the other routes' (70 and 30, or
    /// 0.7 and 0.3).
    pub weight: f64,
}

/// What `routes` send miners to, by the upstreams' order, and their
/// weights; entries that cannot work are left to [`issues`].
pub fn resolve(routes: &[RouteConfig], upstreams: &[UpstreamConfig]) -> Vec<(RouteTo, f64)> {
    routes
        .iter()
        .filter_map(|route| Some((target(&route.to, upstreams)?, route.weight)))
        .collect()
}

fn target(to: &str, upstreams: &[UpstreamConfig]) -> Option<RouteTo> {
    if to == "node" {
        return Some(RouteTo::Node);
    }
    upstreams
        .iter()
        .position(|u| u.name == to)
        .map(RouteTo::Pool)
}

/// What cannot work in the `[[route]]` entries.
pub(super) fn issues(routes: &[RouteConfig], upstreams: &[UpstreamConfig]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let mut issue = |field: &str, why: String| {
            issues.push(ConfigIssue {
                key: format!("route[{i}].{field}"),
                why,
            })
        };
        match target(&route.to, upstreams) {
            None => {
                let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                issue(
                    "to",
                    format!(
                        "{:?} is neither \"node\" nor an [[upstream]]'s name (those are {names:?})",
                        route.to
                    ),
                );
            }
            Some(_) if routes[..i].iter().any(|r| r.to == route.to) => {
                issue("to", format!("{:?} has a route already", route.to));
            }
            Some(_) => {}
        }
        if !(route.weight.is_finite() && route.weight > 0.0 && route.weight <= MAX_WEIGHT) {
            issue(
                "weight",
                format!(
                    "{} is not a number above 0 and at most {MAX_WEIGHT}",
                    route.weight
                ),
            );
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: "stratum+tcp://pool.example:3333".into(),
            user: "ndas".into(),
            password: None,
            miners_per_connection: 50,
            max_connections: 2000,
        }
    }

    fn route(to: &str, weight: f64) -> RouteConfig {
        RouteConfig {
            to: to.into(),
            weight,
        }
    }

    #[test]
    fn a_route_goes_to_the_node_or_a_named_upstream_with_a_positive_weight() {
        let upstreams = [upstream("para"), upstream("backup")];
        let good = [route("node", 70.0), route("backup", 30.0)];
        assert!(issues(&good, &upstreams).is_empty());
        assert_eq!(
            resolve(&good, &upstreams),
            [(RouteTo::Node, 70.0), (RouteTo::Pool(1), 30.0)]
        );
        let bad = [
            route("nodes", 1.0),
            route("para", 0.0),
            route("para", f64::NAN),
            route("node", 1e7),
        ];
        let found: Vec<(String, String)> = issues(&bad, &upstreams)
            .into_iter()
            .map(|i| (i.key, i.why))
            .collect();
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "route[0].to",
                "route[1].weight",
                "route[2].to",
                "route[2].weight",
                "route[3].weight"
            ]
        );
        assert!(
            found[0].1.contains("\"para\", \"backup\""),
            "{}",
            found[0].1
        );
        assert!(found[2].1.contains("has a route already"));
    }
}
