//! Before a statement is planned: every table it reads must exist, and when one does not, the
//! error says which part is missing (catalog, schema or table) and where it is in the SQL.
//! DataFusion reports all three as the same untyped "table not found" without a position.
//!
//! Also places errors DataFusion raises without a position (an unknown function) at the
//! place in the statement where the name appears.

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Statement, visit_expressions, visit_relations,
};
use std::ops::ControlFlow;

use crate::error::{ErrorKind, Result, SqeError, SqlLocation};

fn start_of(name: &ObjectName) -> Option<SqlLocation> {
    match name.0.first()? {
        ObjectNamePart::Identifier(i) => {
            let l = i.span.start;
            (l.line > 0).then_some(SqlLocation {
                line: l.line,
                column: l.column,
            })
        }
        ObjectNamePart::Function(_) => None,
    }
}

fn last_part(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        ObjectNamePart::Function(_) => None,
    }
}

/// Where the relation whose table part is `table` appears.
fn relation_location(statement: &Statement, table: &str) -> Option<SqlLocation> {
    let mut found = None;
    let _ = visit_relations(statement, |name| {
        if last_part(name).is_some_and(|t| t.eq_ignore_ascii_case(table)) {
            found = start_of(name);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// Statements whose relations are all read (so each must exist).
fn reads_relations(statement: &Statement) -> bool {
    match statement {
        Statement::Query(_) | Statement::Insert(_) | Statement::Delete(_) => true,
        Statement::Update { .. } => true,
        Statement::Explain { statement, .. } => reads_relations(statement),
        _ => false,
    }
}

/// Fails with `CatalogNotFound`, `SchemaNotFound` or `TableNotFound` for the first relation
/// the statement reads that does not exist.
pub async fn check(ctx: &SessionContext, statement: &DFStatement) -> Result<()> {
    let DFStatement::Statement(inner) = statement else {
        return Ok(());
    };
    if !reads_relations(inner) {
        return Ok(());
    }
    let state = ctx.state();
    let refs = state.resolve_table_references(statement)?;
    let options = state.config_options();
    let (default_catalog, default_schema) = (
        options.catalog.default_catalog.clone(),
        options.catalog.default_schema.clone(),
    );
    for r in refs {
        // table functions (generate_series(…), range(…)) are relations too
        if let TableReference::Bare { table } = &r
            && state.table_functions().contains_key(table.as_ref())
        {
            continue;
        }
        let resolved = r.resolve(&default_catalog, &default_schema);
        let at = || relation_location(inner, resolved.table.as_ref());
        let Some(catalog) = ctx.catalog(&resolved.catalog) else {
            return Err(SqeError::new(
                ErrorKind::CatalogNotFound,
                format!("Catalog '{}' not found", resolved.catalog),
            )
            .with_location(at()));
        };
        if resolved.schema.as_ref() == "information_schema" {
            continue;
        }
        let Some(schema) = catalog.schema(&resolved.schema) else {
            return Err(SqeError::new(
                ErrorKind::SchemaNotFound,
                format!("Schema '{}' does not exist", resolved.schema),
            )
            .with_location(at()));
        };
        if schema.table(&resolved.table).await?.is_none() {
            let name = format!(
                "{}.{}.{}",
                resolved.catalog, resolved.schema, resolved.table
            );
            return Err(SqeError::new(
                ErrorKind::TableNotFound,
                format!("Table '{name}' does not exist"),
            )
            .with_location(at()));
        }
    }
    Ok(())
}

/// Gives an error without a position the position of the name it is about, when the
/// statement shows it (an unknown function: `Invalid function 'x'`).
pub fn locate(statement: &DFStatement, error: SqeError) -> SqeError {
    if error.kind() != ErrorKind::FunctionNotFound {
        return error;
    }
    let location = error.location();
    let DFStatement::Statement(inner) = statement else {
        return error;
    };
    let Some(name) = error.message().split('\'').nth(1).map(str::to_string) else {
        return error;
    };
    let error = match crate::functions::unsupported(&name) {
        Some(message) => SqeError::not_supported(message),
        None => {
            let hint = error
                .message()
                .split_once("Did you mean")
                .map(|(_, rest)| format!(". Did you mean{}", rest.trim_end()))
                .unwrap_or_default();
            SqeError::new(
                ErrorKind::FunctionNotFound,
                format!("Function '{name}' not registered{hint}"),
            )
        }
    };
    if location.is_some() {
        return error.with_location(location);
    }
    let mut found = None;
    let _ = visit_expressions(inner.as_ref(), |e| {
        if let Expr::Function(f) = e
            && last_part(&f.name).is_some_and(|n| n.eq_ignore_ascii_case(&name))
        {
            found = start_of(&f.name);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    error.with_location(found)
}
