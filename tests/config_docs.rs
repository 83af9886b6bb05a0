//! The example config works as it stands, every commented line in it is a valid key,
//! and every key it shows is documented in docs/configuration.md.

use llm_gateway::config::Config;

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The example with its commented settings turned on.
fn every_setting_on(example: &str) -> String {
    example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each key of `value` as the reference names it: user-chosen names as NAME or MODEL,
/// arrays of tables as `[]`.
fn key_paths(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    let toml::Value::Table(table) = value else {
        return;
    };
    for (key, value) in table {
        let named = match prefix {
            "providers" | "teams" => "NAME",
            "pricing" => "MODEL",
            "routing.agent_types" => {
                out.push(prefix.to_owned());
                continue;
            }
            _ => key.as_str(),
        };
        let path = if prefix.is_empty() {
            named.to_owned()
        } else {
            format!("{prefix}.{named}")
        };
        match value {
            toml::Value::Table(_) => key_paths(&path, value, out),
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    key_paths(&format!("{path}[]"), item, out);
                }
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn the_example_config_parses_as_it_stands() {
    let config = Config::from_toml_str(&read("examples/gateway.toml")).expect("parses");
    assert!(config.providers.contains_key("anthropic"));
    assert!(config.auth.is_none(), "it starts open, on loopback");
}

#[test]
fn every_commented_setting_is_valid_and_every_key_is_documented() {
    let full = every_setting_on(&read("examples/gateway.toml"));
    let config = Config::from_toml_str(&full).unwrap_or_else(|e| panic!("{e}\n{full}"));
    assert!(config.auth.is_some() && config.state.redis_url.is_some());
    let value: toml::Value = toml::from_str(&full).unwrap();
    let mut paths = Vec::new();
    key_paths("", &value, &mut paths);
    assert!(paths.len() > 50, "{paths:?}");
    let reference = read("docs/configuration.md");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| !reference.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}
