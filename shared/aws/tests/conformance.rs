//! Every conformance suite of `mlc-core`, against moto.

mod common;

mod queue {
    mlc_core::queue_conformance!(crate::common::queue());
}

mod watermark {
    mlc_core::watermark_conformance!(crate::common::store());
}

mod state {
    mlc_core::state_conformance!(crate::common::store());
}

mod audit {
    mlc_core::audit_conformance!(crate::common::store());
}

mod budget {
    mlc_core::budget_conformance!(crate::common::store());
}
