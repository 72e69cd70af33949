using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Refit;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>
/// The one way to read a Waldur list. Waldur pages its lists with DRF's page numbers (<c>page</c>, <c>page_size</c>)
/// and answers a page past the last with 404 "Invalid page.", so the read stops on the last page instead of asking for
/// the next: at a short page, once <c>X-Result-Count</c> items are read, or when the <c>Link</c> header names no
/// <c>rel="next"</c>. A 404 for a later page still ends the list (it shrank while being read).
/// </summary>
public static class WaldurPages
{
    private const string ResultCountHeader = "X-Result-Count";
    private const string LinkHeader = "Link";

    /// <summary>
    /// Every item of the list, page after page as they are enumerated. <paramref name="readPage"/> asks for one page
    /// (number from 1, size) and is called once per page; failures other than a missing later page are thrown as the
    /// plain Refit call would throw them.
    /// </summary>
    public static async IAsyncEnumerable<T> ReadAllAsync<T>(
        Func<int, int, CancellationToken, Task<IApiResponse<List<T>>>> readPage,
        int pageSize,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        var read = 0;
        for (var page = 1; ; page++)
        {
            var (items, last) = await ReadPageAsync(readPage, page, pageSize, read, cancellationToken);
            foreach (var item in items)
            {
                yield return item;
            }

            if (last)
            {
                yield break;
            }

            read += items.Count;
        }
    }

    private static async Task<(List<T> Items, bool Last)> ReadPageAsync<T>(
        Func<int, int, CancellationToken, Task<IApiResponse<List<T>>>> readPage, int page, int pageSize, int readBefore, CancellationToken cancellationToken)
    {
        using var response = await readPage(page, pageSize, cancellationToken);
        if (page > 1 && response.StatusCode == HttpStatusCode.NotFound)
        {
            return ([], true);
        }

        await response.EnsureSuccessfulAsync();
        var items = response.Content ?? [];
        var last = items.Count < pageSize
            || (ResultCount(response.Headers) is { } total && readBefore + items.Count >= total)
            || (response.Headers?.Contains(LinkHeader) == true && response.GetLink("next") is null);
        return (items, last);
    }

    private static long? ResultCount(HttpResponseHeaders? headers) =>
        headers is not null
        && headers.TryGetValues(ResultCountHeader, out var values)
        && long.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            ? count
            : null;
}
