using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The try page's allowance: <see cref="WebOptions.TryMessagesPerVisitor"/> per visitor (a signed cookie) and
/// <see cref="WebOptions.TryMessagesPerAddress"/> per client address (<see cref="ClientAddress"/>), per offering,
/// within <see cref="WebOptions.TryWindow"/>. The counts are promises to visitors, so they are database
/// <see cref="AllowanceCounters"/> and hold across replicas and restarts.
/// </summary>
public sealed class TryLimiter(AllowanceCounters counters, IOptions<WebOptions> options)
{
    /// <summary>
    /// Takes one message, counted at <paramref name="now"/>; false when the visitor or the address has none left. The
    /// result says what is left after it.
    /// </summary>
    public async Task<(bool Taken, int Remaining)> TryTakeAsync(string offering, string visitor, string address, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var rules = Rules(offering, visitor, address);
        if (await counters.TakeAsync(rules, now, cancellationToken) is not null)
        {
            return (false, 0);
        }

        return (true, await RemainingAsync(rules, cancellationToken));
    }

    /// <summary>Gives a message back (the demo agent failed to answer: a failure costs no allowance); <paramref name="takenAt"/>: the instant it was taken at.</summary>
    public Task GiveBackAsync(string offering, string visitor, string address, DateTimeOffset takenAt) =>
        counters.GiveBackAsync(Rules(offering, visitor, address).Select(r => r.Key), takenAt);

    public Task<int> RemainingAsync(string offering, string visitor, string address, CancellationToken cancellationToken) =>
        RemainingAsync(Rules(offering, visitor, address), cancellationToken);

    private async Task<int> RemainingAsync(AllowanceRule[] rules, CancellationToken cancellationToken)
    {
        var used = await counters.UsedAsync(rules, cancellationToken);
        return Math.Max(0, rules.Min(r => r.Limit - used[r.Key]));
    }

    private AllowanceRule[] Rules(string offering, string visitor, string address)
    {
        var settings = options.Value;
        return
        [
            new(AllowanceCounters.Key($"visitor|{offering}|{visitor}"), settings.TryMessagesPerVisitor, settings.TryWindow),
            new(AllowanceCounters.Key($"address|{offering}|{address}"), settings.TryMessagesPerAddress, settings.TryWindow),
        ];
    }
}
