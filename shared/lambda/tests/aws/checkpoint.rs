//! A first sync larger than one run (issue 21): the poll handler stops reading at its deadline
//! with a checkpoint in DynamoDB, the next runs carry on, and the destination converges as
//! after one uninterrupted poll.

use std::time::Duration;

use chrono::Utc;
use mlc_lambda::{poll_handler_until, Target};
use sim_syspro::CompanyCounts;

use crate::common::{context, convergence, deliver, Sims, Stack, SF_FLOW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_in_deadline_slices_converges_like_one_poll() {
    let stack = Stack::new().await;
    let sims = Sims::start(
        CompanyCounts {
            customers: 8,
            invoices: 60,
            payments: 6,
            suppliers: 1,
            ap_invoices: 0,
            purchase_orders: 0,
        },
        43,
    )
    .await;
    let mut config = sims.config(&stack.secret);
    config.flows.retain(|f| f.id == SF_FLOW);
    // Small pages, and every run already past its deadline: one page a run.
    config.flows[0].syspro.page_size = 10;
    let ctx = context(config.clone(), stack.ports());
    let mut runs = 0;
    loop {
        let past = Some(Utc::now() - chrono::Duration::seconds(1));
        let r = poll_handler_until(&ctx, SF_FLOW, &format!("run-{runs}"), past)
            .await
            .unwrap();
        runs += 1;
        assert!(runs < 100, "never finishes: {r:?}");
        if !r.unfinished() {
            break;
        }
    }
    assert!(runs >= 6, "the read took several runs: {runs}");
    let d = deliver(&ctx, &stack, Target::Salesforce, Duration::from_secs(30)).await;
    assert_eq!(d.failures, 0, "{d:?}");
    let c = convergence(&sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
}
