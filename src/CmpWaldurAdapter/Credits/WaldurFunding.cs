using System.Collections.Concurrent;
using System.Globalization;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// Waldur-funded mode: keeps each organization's account balance equal to
/// <c>floor(customer credits / credit price) − uninvoiced charges</c> (see <see cref="WaldurFundingRules"/>).
/// Reads are cached for <see cref="CreditsOptions.FundingCacheLifetime"/> and refreshed when a new
/// month opens; a charge waits for Waldur at most <see cref="CreditsOptions.FundingTimeout"/>. When
/// Waldur is slow or down the last funding read keeps applying (the balance still falls with every
/// charge, so nothing is overspent); an organization whose funding was never read is refused
/// (<see cref="CreditRefusal.FundingUnavailable"/>) until Waldur answers. A customer credit limited to some
/// offerings funds only their subscriptions: the others are refused (<see cref="CreditRefusal.OfferingNotCovered"/>)
/// from the cached read, without asking the database. In ledger mode this does nothing.
/// </summary>
public sealed class WaldurFunding(
    ICreditStore store,
    IServiceProvider services,
    ServedOfferings offerings,
    IDbContextFactory<AdapterDbContext> dbs,
    TimeProvider clock,
    IOptionsMonitor<CreditsOptions> options,
    ILogger<WaldurFunding> logger)
{
    /// <summary>After a failed read, how long charges use the last known funding before Waldur is asked again.</summary>
    public static readonly TimeSpan RetryAfterFailure = TimeSpan.FromSeconds(10);

    /// <summary>After a failed first read (nothing to fall back on), how long charges are refused before Waldur is asked again.</summary>
    public static readonly TimeSpan RetryAfterFirstFailure = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<Guid, State> _states = new();

    /// <summary>
    /// Makes sure the organization's balance reflects Waldur recently enough. Returns false only when its
    /// funding is unknown: never read, and Waldur does not answer now.
    /// </summary>
    public async ValueTask<bool> EnsureFundedAsync(Guid customerId, CancellationToken cancellationToken) =>
        await FundAsync(customerId, cancellationToken) is not null;

    /// <summary>
    /// Before a paid action of a subscription of <paramref name="offering"/>: null when its organization's balance may pay
    /// for it, else why not (funding unknown, or the customer credit limited to other offerings).
    /// </summary>
    public async ValueTask<CreditRefusal?> RefusalAsync(Guid customerId, Guid offering, CancellationToken cancellationToken) =>
        await FundAsync(customerId, cancellationToken) switch
        {
            null => CreditRefusal.FundingUnavailable,
            var state when !WaldurFundingRules.Covers(state.Coverage, offering) => CreditRefusal.OfferingNotCovered,
            _ => null,
        };

    /// <summary>The organization's funding state once recent enough; null when its funding is unknown.</summary>
    private async ValueTask<State?> FundAsync(Guid customerId, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        if (settings.Funding != CreditFunding.WaldurCustomerCredits)
        {
            return State.Unrestricted;
        }

        var now = clock.GetUtcNow();
        // Resolved here, not injected, like the Waldur client: ledger-funded deployments never need Waldur's settings.
        var waldurZone = services.GetRequiredService<IOptionsMonitor<WaldurOptions>>().CurrentValue.FindTimeZone();
        var firstUninvoiced = WaldurFundingRules.FirstUninvoicedPeriod(now, settings.InvoiceFinalizationGrace, waldurZone);
        var state = _states.GetOrAdd(customerId, _ => new State());
        if (state.Answer(now, firstUninvoiced, settings.FundingCacheLifetime) is { } cached)
        {
            return cached ? state : null;
        }

        // One read per organization at a time; the others wait for it instead of asking Waldur too.
        await state.Gate.WaitAsync(cancellationToken);
        try
        {
            if (state.Answer(now, firstUninvoiced, settings.FundingCacheLifetime) is { } fresh)
            {
                return fresh ? state : null;
            }

            return await RefreshAsync(customerId, state, now, firstUninvoiced, settings, cancellationToken) ? state : null;
        }
        finally
        {
            state.Gate.Release();
        }
    }

    /// <summary>Forgets cached reads (tests and the CLI use it to force a fresh read).</summary>
    public void Invalidate(Guid customerId) => _states.TryRemove(customerId, out _);

    /// <summary>
    /// Reads the organization's funding from Waldur now, past the cache (the CLI's balance, where an operator must not
    /// take the last known value for today's). Null when Waldur answered (or in ledger mode), else why it did not.
    /// </summary>
    public async Task<string?> ReadNowAsync(Guid customerId, CancellationToken cancellationToken)
    {
        Invalidate(customerId);
        await FundAsync(customerId, cancellationToken);
        return _states.TryGetValue(customerId, out var state) ? state.LastFailure : null;
    }

    private async Task<bool> RefreshAsync(Guid customerId, State state, DateTimeOffset now, BillingPeriod firstUninvoiced, CreditsOptions settings, CancellationToken cancellationToken)
    {
        (long Credits, IReadOnlySet<Guid>? Coverage) funded;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(settings.FundingTimeout);
            funded = await ReadFundingAsync(customerId, now, settings.CreditPrice, timeout.Token);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested && (UpstreamFailures.IsTransient(exception) || exception is Refit.ApiException))
        {
            // Another replica's last read (kept with the account), coverage included, serves until Waldur answers.
            var applied = state.Known ? null : await LastFundingAsync(customerId, cancellationToken);
            var known = state.Known || applied is not null;
            state.Failed(now + (known ? RetryAfterFailure : RetryAfterFirstFailure), known, applied, UpstreamFailures.Describe(exception));
            logger.LogWarning("Could not read the customer credits of organization {CustomerId} from Waldur ({Reason}); {Consequence}",
                customerId, UpstreamFailures.Describe(exception),
                known ? "charging continues against the last funding read" : "its charges are refused until Waldur answers");
            return known;
        }

        var account = await store.RefreshFundingAsync(customerId, funded.Credits, funded.Coverage, firstUninvoiced, now, cancellationToken);
        // The account's, not this read's: a later read another replica applied first wins, coverage included.
        state.Refreshed(now, firstUninvoiced, Coverage(account));
        logger.LogDebug("Organization {CustomerId} is funded with {Funded} credits for {Offerings}; balance {Balance} after uninvoiced charges since {Period}",
            customerId, funded.Credits, funded.Coverage is null ? "every offering" : $"offerings {string.Join(", ", funded.Coverage)}", account.Balance, firstUninvoiced);
        return true;
    }

    private async Task<(long Credits, IReadOnlySet<Guid>? Coverage)> ReadFundingAsync(Guid customerId, DateTimeOffset now, decimal creditPrice, CancellationToken cancellationToken)
    {
        // Resolved here, not injected: ledger-funded deployments and commands never need a Waldur client.
        var waldur = services.GetRequiredService<IWaldurApi>();
        var pageSize = services.GetRequiredService<IOptions<WaldurOptions>>().Value.PageSize;
        var credits = await WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListCustomerCreditsAsync(customerId, page, size, token), pageSize, cancellationToken)
            .Where(c => c.Customer_uuid == customerId)
            .Select(c => new FundingCredit(
                decimal.TryParse(c.Value, NumberStyles.Number, CultureInfo.InvariantCulture, out var value) ? value : 0m,
                (c.Offerings ?? []).Select(o => o.Uuid).ToList(),
                c.End_date))
            .ToListAsync(cancellationToken);

        var served = offerings.Offerings.Select(o => o.Uuid).ToList();
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var money = WaldurFundingRules.Money(credits, served, today);
        return (WaldurFundingRules.FundedCredits(money, creditPrice), WaldurFundingRules.Coverage(credits, served, today));
    }

    /// <summary>The funding last applied to the organization's account, by any replica; null if it was never read.</summary>
    private async Task<CreditAccount?> LastFundingAsync(Guid customerId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.CreditAccounts.AsNoTracking().SingleOrDefaultAsync(a => a.CustomerId == customerId && a.FundedAt != null, cancellationToken);
    }

    private static HashSet<Guid>? Coverage(CreditAccount account) => account.FundedOfferings?.ToHashSet();

    private sealed class State
    {
        /// <summary>Ledger mode: every subscription spends the balance.</summary>
        public static readonly State Unrestricted = new();

        private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;
        private BillingPeriod _firstUninvoiced;
        private DateTimeOffset _retryAt = DateTimeOffset.MinValue;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public bool Known { get; private set; }

        /// <summary>Why the last read of Waldur failed; null once a read succeeded.</summary>
        public string? LastFailure { get; private set; }

        /// <summary>The offerings the funding covers (null: all); meaningful once <see cref="Known"/>.</summary>
        public IReadOnlySet<Guid>? Coverage { get; private set; }

        /// <summary>The cached answer, or null when Waldur must be asked.</summary>
        public bool? Answer(DateTimeOffset now, BillingPeriod firstUninvoiced, TimeSpan lifetime)
        {
            lock (Gate)
            {
                if (Known && _firstUninvoiced == firstUninvoiced && now < _refreshedAt + lifetime)
                {
                    return true;
                }

                return now < _retryAt ? Known : null;
            }
        }

        public void Refreshed(DateTimeOffset now, BillingPeriod firstUninvoiced, IReadOnlySet<Guid>? coverage)
        {
            lock (Gate)
            {
                _refreshedAt = now;
                _firstUninvoiced = firstUninvoiced;
                _retryAt = DateTimeOffset.MinValue;
                Coverage = coverage;
                LastFailure = null;
                Known = true;
            }
        }

        /// <param name="applied">The account's last funding when this replica had none of its own.</param>
        public void Failed(DateTimeOffset retryAt, bool known, CreditAccount? applied, string failure)
        {
            lock (Gate)
            {
                _retryAt = retryAt;
                LastFailure = failure;
                if (applied is not null)
                {
                    Coverage = WaldurFunding.Coverage(applied);
                }

                Known = known;
            }
        }
    }
}
