namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>Settings for <see cref="StompReconnectBackoff"/>.</summary>
public sealed class StompReconnectBackoffOptions
{
    public TimeSpan InitialDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Up to this fraction of the delay is added at random (0.25 = 0–25 %).</summary>
    public double MaxJitter { get; set; } = 0.25;

    /// <summary>A connection that stayed up this long resets the delay to <see cref="InitialDelay"/>.</summary>
    public TimeSpan StablePeriod { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// Exponential reconnect delay with jitter: attempt n waits min(InitialDelay × 2^n, MaxDelay) plus
/// 0–MaxJitter of that. Usage: connect, call <see cref="MarkConnected"/>, consume until failure,
/// then <c>await DelayAsync()</c> and reconnect.
/// </summary>
/// <remarks>
/// The delay only resets after a connection stayed up for <see cref="StompReconnectBackoffOptions.StablePeriod"/>:
/// a broker that accepts CONNECT and then fails at once (bad subscription, ERROR frame) would
/// otherwise be hit in a tight reconnect loop. Jitter spreads many adapters reconnecting after
/// the same broker restart.
/// </remarks>
public sealed class StompReconnectBackoff
{
    // 2^30 × any sane initial delay is beyond any sane maximum; capping the exponent avoids overflow.
    private const int MaxExponent = 30;

    private readonly StompReconnectBackoffOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly Func<double> _jitterSource;
    private readonly Lock _lock = new();
    private int _attempt;
    private long? _connectedAt;

    /// <param name="jitterSource">Returns a value in [0, 1); values outside are clamped. Defaults to a shared random source.</param>
    public StompReconnectBackoff(
        StompReconnectBackoffOptions? options = null,
        TimeProvider? timeProvider = null,
        Func<double>? jitterSource = null)
    {
        _options = options ?? new StompReconnectBackoffOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_options.InitialDelay, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxDelay, _options.InitialDelay, nameof(options));
        if (!(_options.MaxJitter >= 0 && _options.MaxJitter <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.MaxJitter, "MaxJitter must be between 0 and 1.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(_options.StablePeriod, TimeSpan.Zero, nameof(options));
        _timeProvider = timeProvider ?? TimeProvider.System;
        _jitterSource = jitterSource ?? Random.Shared.NextDouble;
    }

    /// <summary>Failed attempts since the last reset.</summary>
    public int Attempt
    {
        get
        {
            lock (_lock)
            {
                return _attempt;
            }
        }
    }

    /// <summary>Records that a connection is up; whether it counts as stable is decided at the next failure.</summary>
    public void MarkConnected()
    {
        lock (_lock)
        {
            _connectedAt = _timeProvider.GetTimestamp();
        }
    }

    public void Reset()
    {
        lock (_lock)
        {
            _attempt = 0;
            _connectedAt = null;
        }
    }

    /// <summary>The delay before the next attempt; advances the attempt count.</summary>
    public TimeSpan NextDelay()
    {
        lock (_lock)
        {
            if (_connectedAt is { } since && _timeProvider.GetElapsedTime(since) >= _options.StablePeriod)
            {
                _attempt = 0;
            }

            _connectedAt = null;
            var exponent = Math.Min(_attempt, MaxExponent);
            var baseTicks = Math.Min(_options.InitialDelay.Ticks * (double)(1L << exponent), _options.MaxDelay.Ticks);
            var sample = _jitterSource();
            var jitter = (double.IsNaN(sample) ? 0.0 : Math.Clamp(sample, 0.0, 1.0)) * _options.MaxJitter;
            if (_attempt < int.MaxValue)
            {
                _attempt++;
            }

            return TimeSpan.FromTicks((long)(baseTicks * (1 + jitter)));
        }
    }

    /// <summary>Waits <see cref="NextDelay"/> on the configured clock.</summary>
    /// <returns>The delay that was waited.</returns>
    public async Task<TimeSpan> DelayAsync(CancellationToken cancellationToken = default)
    {
        var delay = NextDelay();
        await Task.Delay(delay, _timeProvider, cancellationToken);
        return delay;
    }
}
