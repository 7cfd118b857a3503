//! `egressctl explain`: the verdict for one packet, and why.

use egress_core::engine::{Engine, EngineConfig};
use egress_core::render;

use crate::cli::{ExplainArgs, TextOrJson};
use crate::diagnostics;
use crate::input::load_for_node;
use crate::{Failure, emit};

pub(crate) fn run(args: &ExplainArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(&args.files, &args.node, args.strict)?;
    diagnostics::print_policy_diagnostics(&snapshot);
    let config = EngineConfig {
        selection: args.node.selection.into(),
        ..EngineConfig::new(node)
    };
    let engine = Engine::from_snapshot(&snapshot, config).0;
    let explanation = engine.explain(args.src, args.dst);
    match args.output {
        TextOrJson::Text => {
            let names = |uid: &str| {
                snapshot
                    .endpoints
                    .iter()
                    .find(|e| e.uid == uid)
                    .map(|e| e.display_name())
            };
            emit(&explanation.render(&names));
        }
        TextOrJson::Json => {
            emit(&render::json_text(&render::explanation_json(&explanation)));
        }
    }
    Ok(())
}
