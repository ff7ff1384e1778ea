//! Reading an entity's rows as the destination needs them: the columns it reads, master
//! lookups (`Customer.Name`) and child aggregates filled. The poll, `preview` and `resync` read
//! through this one path, so what they see is what the sink is sent.

use std::collections::{BTreeSet, HashMap, HashSet};

use mlc_core::config::{EntityConfig, FlowConfig};
use mlc_core::ports::{Source, SourceError};
use mlc_core::query::{Filter, PageCursor, SourcePage, SourceQuery};
use mlc_core::view::DestinationView;
use mlc_core::{Entity, Record};
use serde_json::Value;

use crate::children;
use crate::derive::{derivation_inputs, record_key};
use crate::error::{EngineError, Result};

/// Keys fetched per by-key query (vanished open items, master lookups, calendar re-reads).
pub const KEYS_PER_QUERY: usize = 50;

/// A master lookup the destination reads: (master entity, key column on the row, master
/// columns).
type Lookup = (Entity, &'static str, Vec<String>);

/// Reads one entity of one flow; caches master records for its lifetime (one poll).
pub struct EntityReader<'a> {
    flow: &'a FlowConfig,
    source: &'a dyn Source,
    /// What the destination sees of the entity.
    pub view: DestinationView,
    /// The columns every read of this reader selects, with no filter.
    pub base: SourceQuery,
    lookups: Vec<Lookup>,
    cache: HashMap<Entity, HashMap<String, Vec<Value>>>,
}

impl<'a> EntityReader<'a> {
    /// A reader of `ec`; `with_rowversion` adds `TimeStamp` to the columns.
    pub fn new(
        flow: &'a FlowConfig,
        source: &'a dyn Source,
        ec: &EntityConfig,
        with_rowversion: bool,
    ) -> Self {
        let view = DestinationView::of(flow, ec);
        let base = SourceQuery {
            entity: ec.entity,
            fields: select(ec, &view, with_rowversion),
            filter: None,
            page_size: flow.syspro.page_size,
        };
        let lookups = lookups(&view);
        EntityReader {
            flow,
            source,
            view,
            base,
            lookups,
            cache: HashMap::new(),
        }
    }

    /// The entity.
    pub fn entity(&self) -> Entity {
        self.base.entity
    }

    /// The base query with `filter`.
    pub fn query(&self, filter: Option<Filter>) -> SourceQuery {
        SourceQuery {
            filter,
            ..self.base.clone()
        }
    }

    /// Wraps a source error with the flow and entity.
    pub fn source_err(&self, entity: Entity, source: SourceError) -> EngineError {
        EngineError::Source {
            flow: self.flow.id.clone(),
            entity: entity.to_string(),
            source,
        }
    }

    /// One page of `query`, its master lookups and child aggregates filled.
    pub async fn page(
        &mut self,
        query: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<SourcePage> {
        let mut page = self
            .source
            .read_page(query, cursor)
            .await
            .map_err(|e| self.source_err(query.entity, e))?;
        for i in 0..self.lookups.len() {
            let lookup = self.lookups[i].clone();
            self.fill_lookups(&lookup, &mut page.rows).await?;
        }
        children::fill(self.source, &self.view, &mut page.rows, query.page_size)
            .await
            .map_err(|e| self.source_err(query.entity, e))?;
        Ok(page)
    }

    /// The rows of `keys` (identities, `|`-joined parts), all pages; and the identities found.
    pub async fn by_keys(&mut self, keys: &[String]) -> Result<(Vec<Record>, HashSet<String>)> {
        let entity = self.entity();
        let mut rows = Vec::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let parts: Vec<Vec<String>> = chunk
                .iter()
                .map(|k| k.split('|').map(str::to_string).collect())
                .collect();
            let q = self.query(Some(Filter::keys(entity, &parts)));
            let mut cursor = None;
            loop {
                let mut page = self.page(&q, cursor.as_ref()).await?;
                rows.append(&mut page.rows);
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        let found = rows
            .iter()
            .filter_map(|r| record_key(entity, r))
            .map(|k| k.id())
            .collect();
        Ok((rows, found))
    }

    /// Fills `Master.Column` fields of rows from their master records, one query per 50 keys,
    /// cached for the reader's life (the values trimmed once, when cached).
    async fn fill_lookups(
        &mut self,
        (master, key_col, cols): &Lookup,
        rows: &mut [Record],
    ) -> Result<()> {
        let prefix = *key_col;
        let known = self.cache.entry(*master).or_default();
        let missing: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| r.get(prefix).and_then(Value::as_str))
            .map(str::trim_end)
            .filter(|c| !known.contains_key(*c))
            .map(str::to_string)
            .collect();
        let missing: Vec<String> = missing.into_iter().collect();
        let mut fields: Vec<String> = vec![prefix.to_string()];
        fields.extend(cols.iter().cloned());
        for chunk in missing.chunks(KEYS_PER_QUERY) {
            let parts: Vec<Vec<String>> = chunk.iter().map(|c| vec![c.clone()]).collect();
            let q = SourceQuery {
                entity: *master,
                fields: fields.clone(),
                filter: Some(Filter::keys(*master, &parts)),
                page_size: self.flow.syspro.page_size,
            };
            let mut cursor = None;
            loop {
                let page = match self.source.read_page(&q, cursor.as_ref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        return Err(EngineError::Source {
                            flow: self.flow.id.clone(),
                            entity: master.to_string(),
                            source: e,
                        })
                    }
                };
                for r in page.rows {
                    if let Some(k) = r.get(prefix).and_then(Value::as_str) {
                        let values = cols
                            .iter()
                            .map(|c| match r.get(c) {
                                Some(Value::String(s)) => Value::String(s.trim().to_string()),
                                Some(v) => v.clone(),
                                None => Value::Null,
                            })
                            .collect();
                        known.insert(k.trim_end().to_string(), values);
                    }
                }
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            // Keys SYSPRO does not know get nulls, and are not asked again.
            for c in chunk {
                known
                    .entry(c.clone())
                    .or_insert_with(|| vec![Value::Null; cols.len()]);
            }
        }
        let names: Vec<String> = cols.iter().map(|c| format!("{prefix}.{c}")).collect();
        for r in rows.iter_mut() {
            let Some(values) = r
                .get(prefix)
                .and_then(Value::as_str)
                .and_then(|k| known.get(k.trim_end()))
            else {
                continue;
            };
            for (name, v) in names.iter().zip(values) {
                r.insert(name.clone(), v.clone());
            }
        }
        Ok(())
    }
}

/// Columns to read: keys, the columns the destination reads, derivation inputs, the date
/// field and `TimeStamp`. Any column the server has may be named (the reader checks them
/// against `$metadata`).
fn select(ec: &EntityConfig, view: &DestinationView, with_rowversion: bool) -> Vec<String> {
    let entity = ec.entity;
    let mut set: BTreeSet<String> = entity.key_fields().iter().map(|s| s.to_string()).collect();
    set.extend(view.columns().map(str::to_string));
    set.extend(derivation_inputs(entity).iter().map(|f| f.to_string()));
    if let Some(d) = &ec.date_field {
        set.insert(d.clone());
    }
    if let Some(d) = &ec.status_rules.due_date_from {
        set.insert(d.clone());
    }
    if with_rowversion {
        set.insert("TimeStamp".into());
    }
    set.into_iter().collect()
}

/// Master-record lookups the destination reads (`Customer.Name`, `Supplier.SupplierName`).
fn lookups(view: &DestinationView) -> Vec<Lookup> {
    let mut out: Vec<Lookup> = Vec::new();
    for (prefix, col) in view.lookups() {
        let (master, key_col) = match prefix {
            "Customer" if view.entity != Entity::ArCustomer => (Entity::ArCustomer, "Customer"),
            "Supplier" if view.entity != Entity::ApSupplier => (Entity::ApSupplier, "Supplier"),
            _ => continue,
        };
        match out.iter_mut().find(|(m, ..)| *m == master) {
            Some((_, _, cols)) if !cols.iter().any(|c| c == col) => cols.push(col.to_string()),
            Some(_) => {}
            None => out.push((master, key_col, vec![col.to_string()])),
        }
    }
    out
}
