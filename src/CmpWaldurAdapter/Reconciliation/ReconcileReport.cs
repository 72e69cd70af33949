namespace CmpWaldurAdapter.Reconciliation;

/// <summary>The kinds of disagreement between Waldur, the adapter's records and the upstreams.</summary>
public enum DriftKind
{
    /// <summary>A Waldur order of a served offering sat in pending-provider or executing longer than <c>Orders:StuckAfter</c>.</summary>
    StuckOrder,

    /// <summary>An active subscription whose Langflow user, key, project or flow, or RAGFlow dataset is gone.</summary>
    MissingTenant,

    /// <summary>A month-to-date usage total Waldur holds differs from the ledger's.</summary>
    UsageDrift,

    /// <summary>A <c>cmp-*</c> Langflow user of a project with no live subscription.</summary>
    OrphanLangflowUser,

    /// <summary>A <c>cmp-*</c> Langflow project that belongs to no live subscription.</summary>
    OrphanLangflowProject,

    /// <summary>A <c>… cmp-*</c> Langflow flow that belongs to no live subscription.</summary>
    OrphanFlow,

    /// <summary>A <c>cmp-*</c> RAGFlow dataset that belongs to no live subscription.</summary>
    OrphanDataset,

    /// <summary>An organization recorded without a name (credits granted before its first order) that Waldur names.</summary>
    NamelessOrganization,
}

/// <summary>What reconciliation did about one drift.</summary>
public enum DriftOutcome
{
    /// <summary>Left as it is: a dry run, or an orphan without <c>--prune</c>. The drift remains.</summary>
    Found,

    /// <summary>Repaired (order re-fed, tenant re-provisioned, usage re-reported, organization named).</summary>
    Fixed,

    /// <summary>An orphan deleted with <c>--prune</c>.</summary>
    Removed,

    /// <summary>The repair was tried and failed; the drift remains.</summary>
    Failed,
}

/// <summary>One drift: what, which object, and what was done.</summary>
public sealed record Drift(DriftKind Kind, string Subject, string Detail, DriftOutcome Outcome, string? Error = null)
{
    public bool Remains => Outcome is DriftOutcome.Found or DriftOutcome.Failed;
}

/// <summary>Everything one reconciliation run found, in the order found.</summary>
public sealed record ReconcileReport(IReadOnlyList<Drift> Drifts, IReadOnlyList<string> Checked, bool DryRun, bool Prune)
{
    /// <summary>No drift was found, or every drift found was repaired.</summary>
    public bool Clean => Drifts.All(d => !d.Remains);
}

/// <summary>Progress of a run, for a terminal progress bar: step <see cref="Step"/> of <see cref="Steps"/>.</summary>
public sealed record ReconcileProgress(int Step, int Steps, string Activity);

/// <summary>What a run looks at and may change.</summary>
public sealed record ReconcileRequest(Guid? Offering = null, bool DryRun = false, bool Prune = false);
