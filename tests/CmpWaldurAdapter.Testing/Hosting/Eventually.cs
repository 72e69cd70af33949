namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>Waits for a condition instead of sleeping a fixed time: fast when things are fast, bounded when not.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, TimeSpan? timeout = null, string? because = null)
    {
        await TrueAsync(() => Task.FromResult(condition()), timeout, because);
    }

    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? because = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("Condition not met in time" + (because is null ? "." : ": " + because));
            }

            await Task.Delay(25);
        }
    }
}
